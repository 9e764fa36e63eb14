"""Source of the look-alike corpus (eval/lookalike/): articles that share their entities but not their facts.

Not about Kursk: company results by quarter and year, race results by year, and project budgets by
identifier, each entity in several articles with different years, quarters and figures, so that a
question's year, quarter or identifier decides which sentence answers it, and a question about a
year, quarter or identifier no article has must be refused. Deterministic (seed 1234); run it to
regenerate the articles and eval/lookalike/questions.jsonl.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

HERE = Path(__file__).with_name("lookalike")
ART = HERE / "articles"
rng = random.Random(1234)

QUARTER_WORDS = {1: "first", 2: "second", 3: "third", 4: "fourth"}
QUARTER_END = {1: "04-28", 2: "07-27", 3: "10-26", 4: "01-30"}
COMPANIES = [
    ("Norvik Foods", "Tessa Lind", "frozen meals", "Aarhus"),
    ("Calder Rail", "Owen Pryce", "regional trains", "Leeds"),
    ("Mirela Textiles", "Ana Voicu", "technical fabrics", "Cluj"),
    ("Brightwater Energy", "Sam Okafor", "offshore wind", "Aberdeen"),
    ("Harlan Bikes", "Greta Maas", "electric bicycles", "Utrecht"),
    ("Quayside Media", "Priya Raman", "local newspapers", "Bristol"),
]
RUNNERS = [
    ("Marta Silva", "Hallam Marathon"), ("Jonas Berg", "Fjord Half Marathon"),
    ("Aiko Tanaka", "Lakeshore 10K"), ("Lena Novak", "Danube City Marathon"),
]
ORDINALS = {1: "won", 2: "finished second in", 3: "finished third in", 4: "finished fourth in"}

articles: list[tuple[str, str]] = []
questions: list[dict] = []


def add_q(cat: str, question: str, required: list[list[str]] | None = None, wrong: list[str] | None = None,
          support: list[tuple[str, str]] | None = None, answerable: bool = True, **extra: object) -> None:
    questions.append({
        "id": f"l{len(questions) + 1:03d}", "category": cat, "question": question, "answerable": answerable,
        "required": required or [], "wrong": wrong or [],
        "support": [{"source": s, "quote": t} for s, t in (support or [])], "sides": [], **extra,
    })


# --- companies: quarterly results ------------------------------------------------------------------
for name, ceo, product, city in COMPANIES:
    slug = name.lower().replace(" ", "-")
    periods = rng.sample([(y, qq) for y in (2021, 2022, 2023) for qq in (1, 2, 3, 4)], 4)
    figures: dict[tuple[int, int], str] = {}
    for year, quarter in periods:
        revenue = f"{rng.randint(120, 980)} million"
        figures[(year, quarter)] = revenue
    for year, quarter in periods:
        revenue = figures[(year, quarter)]
        staff = rng.randint(800, 9000)
        growth = rng.randint(2, 19)
        plant_year = year + rng.choice([1, 2])
        qword = QUARTER_WORDS[quarter]
        date_year = year + 1 if quarter == 4 else year
        date = f"{date_year}-{QUARTER_END[quarter]}"
        fname = f"{slug}-{year}-q{quarter}.md"
        style = rng.choice(["phrase", "code"])
        period = f"the {qword} quarter of {year}" if style == "phrase" else f"Q{quarter} {year}"
        sentence = f"{name} reported revenue of ${revenue} for {period}, up {growth}% on a year earlier."
        body = (
            f"---\ndate: {date}\n---\n# {name} results for {period}\n\n"
            f"{sentence} The maker of {product} said demand held up in its home market. "
            f"Chief executive {ceo} told analysts the company now employs {staff:,} people. "
            f"{name} plans to open a new plant in {city} in {plant_year}, {ceo} said. "
            f"Shares in {name} rose {rng.randint(1, 9)}% in early trading after the results.\n"
        )
        articles.append((fname, body))
        others = [v for k, v in figures.items() if k != (year, quarter) and v != revenue]
        q_period = rng.choice([f"Q{quarter} {year}", f"the {qword} quarter of {year}"])
        add_q("quarter_fact", f"What revenue did {name} report for {q_period}?", [[revenue]],
              wrong=others, support=[(fname, sentence)])
    # the same company, a period no article reports
    absent = [(y, qq) for y in (2021, 2022, 2023) for qq in (1, 2, 3, 4) if (y, qq) not in figures]
    for year, quarter in rng.sample(absent, 2):
        add_q("quarter_mismatch", f"What revenue did {name} report for Q{quarter} {year}?", answerable=False)
    add_q("overview", f"Give me an overview of {name}.", [[f"re:{name}"]], min_sources=2)

# --- runners: results by year ---------------------------------------------------------------------
for runner, race in RUNNERS:
    years = sorted(rng.sample(range(2016, 2024), 3))
    places = rng.sample([1, 2, 3, 4], 3)
    if 1 not in places:
        places[0] = 1
    times = {}
    for year, place in zip(years, places):
        t = f"{rng.randint(2, 2)}:{rng.randint(10, 45):02d}:{rng.randint(0, 59):02d}" if "Marathon" in race \
            and "Half" not in race else f"{rng.randint(30, 75)}:{rng.randint(0, 59):02d}"
        times[year] = t
        fname = f"{runner.lower().replace(' ', '-')}-{year}.txt"
        sentence = f"{runner} {ORDINALS[place]} the {race} in {year} in a time of {t}."
        body = (
            f"{runner} at the {race}\n\n{sentence} Conditions were {rng.choice(['cool', 'humid', 'windy'])} "
            f"and more than {rng.randint(2, 30)},000 runners started the race. "
            f"{runner} said after the finish that the course suited her well.\n"
        )
        articles.append((fname, body))
        others = [v for k, v in times.items() if k != year]
        if place == 1:
            add_q("year_fact", f"In what time did {runner} win the {race} in {year}?", [[t]], wrong=others,
                  support=[(fname, sentence)])
        else:
            add_q("year_fact", f"Where did {runner} finish in the {race} in {year}?",
                  [[ORDINALS[place].replace("finished ", "").replace(" in", "")]], support=[(fname, sentence)])
    missing = [y for y in range(2016, 2024) if y not in years]
    add_q("year_mismatch", f"How did {runner} do in the {race} in {rng.choice(missing)}?", answerable=False)

# --- projects: budgets by identifier ----------------------------------------------------------------
ids = sorted(rng.sample(range(1, 60), 30))
budgets: dict[int, str] = {}
for pid in ids:
    budget = f"{rng.randint(1, 9)}.{rng.randint(1, 9)} million"
    budgets[pid] = budget
    code = f"Project{pid:04d}"
    fname = f"project-{pid:04d}.txt"
    sentence = f"The {code} budget was £{budget}, the council said."
    body = (
        f"Council approves {code}\n\n{sentence} Work on {code} is due to start next spring and will "
        f"run for {rng.randint(6, 30)} months. Councillors voted {rng.randint(20, 40)} to {rng.randint(1, 12)} in favour.\n"
    )
    articles.append((fname, body))
for pid in rng.sample(ids, 12):
    code = f"Project{pid:04d}"
    add_q("identifier_fact", f"What was the {code} budget?", [[budgets[pid]]],
          wrong=[v for k, v in budgets.items() if k != pid and v != budgets[pid]][:5],
          support=[(f"project-{pid:04d}.txt", f"The {code} budget was £{budgets[pid]}")])
absent_ids = [i for i in range(1, 60) if i not in budgets]
for pid in rng.sample(absent_ids, 10):
    add_q("identifier_mismatch", f"What was the Project{pid:04d} budget?", answerable=False)

# --- questions about nothing here ------------------------------------------------------------------
for text in ["What revenue did Norvik Foods report in Q3 2019?", "Who won the Hallam Marathon in 2012?",
             "What is the budget of the Aarhus city council?", "Norvikxq Foodzzq revenue?",
             "What was the Project0100 budget?", "How many people does Tessa Lind's rival employ?",
             "What's going on with the Olympic Games?"]:
    add_q("unanswerable", text, answerable=False)

if __name__ == "__main__":
    if ART.exists():
        shutil.rmtree(ART)
    ART.mkdir(parents=True)
    for fname, body in articles:
        (ART / fname).write_text(body, encoding="utf-8")
    (HERE / "questions.jsonl").write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in questions),
                                           encoding="utf-8")
    print(f"wrote {len(articles)} articles and {len(questions)} questions to {HERE}")
