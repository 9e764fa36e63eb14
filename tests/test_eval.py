"""The eval set is sound, the metrics are deterministic, and the gate catches a broken answerer."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from assistant import Answer, Assistant, Citation
from assistant import eval as ev
from assistant.ingest import read_text

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = ev.load_questions()


def test_fact_set_shape() -> None:
    assert len(QUESTIONS) >= 150
    cats = Counter(q["category"] for q in QUESTIONS)
    for cat in ("single_fact", "number", "name", "who_said", "changed_over_time", "conflict",
                "multi_article", "paraphrase", "typo", "false_premise", "unanswerable", "overview",
                "constraint_mismatch", "near_miss", "identifier"):
        assert cats[cat] >= 1, cat
    assert sum(not q["answerable"] for q in QUESTIONS) >= 12
    assert len({q["id"] for q in QUESTIONS}) == len(QUESTIONS)


LOOKALIKE = ev.load_questions(REPO / "eval" / "lookalike" / "questions.jsonl")


def test_lookalike_corpus_shares_entities_but_not_facts() -> None:
    """Every answerable look-alike question has wrong values from the same entity's other articles, and
    every quote is verbatim in its file."""
    docs = REPO / "eval" / "lookalike" / "articles"
    assert len(list(docs.iterdir())) >= 40
    cats = Counter(q["category"] for q in LOOKALIKE)
    assert cats["quarter_mismatch"] >= 5 and cats["identifier_mismatch"] >= 5 and cats["year_mismatch"] >= 3
    for q in LOOKALIKE:
        for s in q["support"]:
            assert s["quote"] in read_text(docs / s["source"]), s
    assert sum(bool(q["wrong"]) for q in LOOKALIKE if q["category"] == "quarter_fact") >= 20


@pytest.mark.parametrize("q", [q for q in QUESTIONS if q["support"]], ids=lambda q: q["id"])
def test_every_support_quote_is_verbatim_in_its_file(q: dict) -> None:
    for s in q["support"]:
        assert s["quote"] in read_text(REPO / "seeds" / s["source"]), s
    for facts in q["required"]:  # every required fact is findable in some supporting quote or file
        assert any(ev.any_match(facts, read_text(REPO / "seeds" / s["source"])) for s in q["support"]), facts


def test_matching_rules() -> None:
    assert ev.matches("12,000", "about 12,000 North Korean troops")
    assert not ev.matches("100", "over 1000 settlements")
    assert not ev.matches("200", "12,000")
    assert ev.matches("re:secured Sudzha", "had fully SECURED Sudzha itself")
    assert ev.matches("Russia’s", "Russia's")


def _answer(text: str, citations: list[Citation], abstained: bool = False) -> Answer:
    return Answer(question="q", text=text, citations=citations, abstained=abstained)


def test_citation_metrics_on_hand_written_answers() -> None:
    q = next(x for x in QUESTIONS if x["question"].startswith("How many North Korean troops"))
    src = "002_5fe3474391e77e48.txt"
    text = read_text(REPO / "seeds" / src)
    quote = (
        "Russia later deployed about 12,000 North Korean troops in October 2024 to assist in repelling the incursion."
    )
    start = text.index(quote)
    good = Citation(source=src, quote=quote, start=start, end=start + len(quote))
    a = _answer("Russia deployed about 12,000 North Korean troops [1].", [good])
    a.contexts = []
    s = ev.score(q, a, REPO / "seeds")
    assert s.correct and s.fact_sentences_cited == 1 and s.citations_supporting == 1
    assert s.valid_citations == 0  # the cited source was not among the retrieved contexts
    shifted = good.model_copy(update={"start": start + 1, "end": start + len(quote) + 1})
    s = ev.score(q, _answer("Russia deployed 12,000 troops [1].", [shifted]), REPO / "seeds")
    assert s.valid_citations == 0 and "invalid citation" in " ".join(s.reasons)
    wrong = Citation(source=src, quote="Featured", start=0, end=8)
    s = ev.score(q, _answer("Russia deployed 12,000 troops [1].", [wrong]), REPO / "seeds")
    assert s.fact_sentences_cited == 0 and s.citations_supporting == 0


def _run_eval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seeded: Assistant,
              corpus: str = "seeds") -> tuple[int, dict]:
    if corpus == "seeds":
        monkeypatch.setattr(ev, "_assistant", lambda *a, **kw: seeded)
    args = SimpleNamespace(answerer="offline", docs=None, index=str(tmp_path / "index"), questions=None,
                           limit=None, out=str(tmp_path / "out"), corpus=corpus, fit=False)
    rc = ev.run_cli(args)
    return rc, json.loads((tmp_path / "out" / corpus / "results.json").read_text())


def test_gate_passes_for_the_real_answerer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seeded: Assistant) -> None:
    rc, res = _run_eval(tmp_path, monkeypatch, seeded)
    assert rc == 0, res["failures"]
    report = (tmp_path / "out" / "seeds" / "report.md").read_text()
    assert "Gate: PASS" in report and "## Per category" in report and "refusal recall" in report


def test_gate_passes_on_the_lookalike_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            seeded: Assistant) -> None:
    """The same scoring code on a corpus that is not about Kursk: right year/quarter/identifier or refuse."""
    rc, res = _run_eval(tmp_path, monkeypatch, seeded, corpus="lookalike")
    assert rc == 0, res["failures"]
    assert res["per_category"]["quarter_mismatch"]["refusal_recall"] == 1.0
    assert res["per_category"]["identifier_mismatch"]["refusal_recall"] == 1.0


def test_gate_fails_for_a_broken_answerer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seeded: Assistant) -> None:
    import assistant.answer as core

    real = core.compose

    def off_by_one(*args: object, **kwargs: object) -> Answer:
        a = real(*args, **kwargs)  # type: ignore[arg-type]
        for c in a.citations:  # a classic bug: offsets shifted by one
            c.start, c.end = c.start + 1, c.end + 1
        return a

    monkeypatch.setattr(core, "compose", off_by_one)
    rc, res = _run_eval(tmp_path, monkeypatch, seeded)  # the user never sees such a citation: withdrawn
    assert rc == 1 and any("answer_accuracy" in f for f in res["failures"])
    import assistant.assistant as front

    monkeypatch.setattr(front, "check_answer", lambda a, files, changes: a)  # without the last check ...
    rc, res = _run_eval(tmp_path, monkeypatch, seeded)
    assert rc == 1
    assert any("citation_validity" in f for f in res["failures"])  # ... the eval's own check catches it

    monkeypatch.setattr(core, "compose",  # always abstains
                        lambda q, evidence, t, m=None, scored=None: real(q, evidence, 2.0, m, scored))
    rc, res = _run_eval(tmp_path, monkeypatch, seeded)
    assert rc == 1
    assert any("answer_accuracy" in f for f in res["failures"])
    assert any("false_refusal_rate" in f for f in res["failures"])


def test_conversation_set_scores_rewriting_and_its_gate_can_fail(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import assistant.followup as followup
    from assistant.eval import EVAL_DIR, conversation_scores, conversations_cli, load_config, load_questions

    rows = load_questions(EVAL_DIR / "conversations.jsonl")
    assert len(rows) >= 40 and {r["kind"] for r in rows} == {"topic_switch", "pronoun", "ellipsis", "correction"}
    assert all(len(r["turns"]) in (2, 3) for r in rows)
    assert conversations_cli(tmp_path, load_config()) == []
    metrics, _ = conversation_scores(rows)
    assert metrics["rewrite_precision"] >= 0.95 and metrics["rewrite_recall"] >= 0.95
    monkeypatch.setattr(followup, "needs_rewrite", lambda q: True)  # the old habit: rewrite everything
    failures = conversations_cli(tmp_path, load_config())
    assert any("rewrite_precision" in f for f in failures)


def test_a_subset_says_what_it_cannot_measure_and_exits_as_it_prints(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seeded: Assistant, capsys: pytest.CaptureFixture[str]) -> None:
    """`assistant eval --limit 5`: the first five questions are all answerable, so refusal recall is not measured;
    that is said, it is no FAIL, and the exit status is the gate that was printed."""
    monkeypatch.setattr(ev, "_assistant", lambda *a, **kw: seeded)
    args = SimpleNamespace(answerer="offline", docs=None, index=str(tmp_path / "index"), questions=None,
                           limit=5, out=str(tmp_path / "out"), corpus="seeds", fit=False)
    rc = ev.run_cli(args)
    out = capsys.readouterr().out
    res = json.loads((tmp_path / "out" / "seeds" / "results.json").read_text())
    assert "gate: PASS" in out and "FAIL" not in out and rc == 0, out
    assert "not measured (none of these 5 questions tests it): refusal_recall" in out
    assert "refusal_recall" in res["not_measured"] and res["failures"] == []
    assert "not measured on this subset: refusal_recall" in (tmp_path / "out" / "seeds" / "report.md").read_text()

    import assistant.answer as core

    real = core.compose
    monkeypatch.setattr(core, "compose",  # always abstains: a real failure on the subset still fails
                        lambda q, evidence, t, m=None, scored=None: real(q, evidence, 2.0, m, scored))
    rc = ev.run_cli(args)
    out = capsys.readouterr().out
    assert rc == 1 and "gate: FAIL" in out and "answer_accuracy = 0.000 is under the minimum" in out


def test_a_misspelled_conversation_threshold_fails_the_gate(tmp_path: Path) -> None:
    config = ev.load_config()
    config["thresholds"]["conversations"] = {"min": {"rewrite_precison": 0.9}}  # sic: nothing measures it
    failures = ev.conversations_cli(tmp_path, config)
    assert failures and "rewrite_precison was not measured" in failures[0]
