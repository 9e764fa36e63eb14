"""Deterministic evaluation of answers, citations, retrieval and abstention (no LLM judge).

Reads eval/questions.jsonl (see eval/make_questions.py), answers every question, scores it, writes
results.json and report.md, and fails when a metric is under the thresholds in eval/config.json.
"""

from __future__ import annotations

import json
import logging
import re
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import selector
from .assistant import Assistant
from .citations import REFUSED, split_answer_sentences
from .errors import AssistantError
from .ingest import read_text
from .schema import Answer
from .settings import REPO_ROOT
from .text import question_kind, terms

log = logging.getLogger(__name__)

EVAL_DIR = REPO_ROOT / "eval"
K_VALUES = (1, 3, 6)


def load_questions(path: Path | None = None) -> list[dict[str, Any]]:
    path = path or EVAL_DIR / "questions.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_config(path: Path | None = None) -> dict[str, Any]:
    return dict(json.loads((path or EVAL_DIR / "config.json").read_text(encoding="utf-8")))


def _norm(text: str) -> str:
    return " ".join(text.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"').split()).lower()


def matches(form: str, text: str) -> bool:
    """Does an accepted answer form occur in text? Forms starting with 're:' are regexes."""
    if form.startswith("re:"):
        return re.search(form[3:], text, re.IGNORECASE) is not None
    t, f = _norm(text), _norm(form)
    if re.fullmatch(r"[\d,. ]+", f):  # a number must not match inside a bigger number
        return re.search(rf"(?<![\d,.]){re.escape(f)}(?![\d]|,\d)", t) is not None
    return f in t


def any_match(forms: list[str], text: str) -> bool:
    return any(matches(f, text) for f in forms)


@dataclass
class Scored:
    question: dict[str, Any]
    answer: Answer | None
    error: str = ""
    correct: bool = False
    reasons: list[str] = field(default_factory=list)
    valid_citations: int = 0
    total_citations: int = 0
    fact_sentences: int = 0
    fact_sentences_cited: int = 0
    citations_supporting: int = 0
    seconds: float = 0.0
    rank: int | None = None  # first rank (1-based) of a supporting file, ours
    baseline_rank: int | None = None
    conflict_ok: bool | None = None


def _supports(quote: str, sentence: str) -> bool:
    """A citation supports its sentence if they share most of the sentence's content words."""
    s_terms = set(terms(sentence))
    if not s_terms:
        return False
    return len(s_terms & set(terms(quote))) / len(s_terms) >= 0.5


def score(q: dict[str, Any], answer: Answer | None, docs_dir: Path, error: str = "") -> Scored:
    sc = Scored(question=q, answer=answer, error=error)
    if answer is None:
        sc.reasons.append(f"error: {error}")
        return sc
    text = answer.text
    # correctness ------------------------------------------------------------------------------------
    if not q["answerable"]:
        sc.correct = answer.abstained
        if not answer.abstained:
            sc.reasons.append("answered a question the articles do not answer")
    elif q.get("min_sources") is not None:  # a broad question: an overview from several articles
        sources = {c.source for c in answer.citations}
        missing = [facts for facts in q["required"] if not any_match(facts, text)]
        if answer.abstained:
            sc.reasons.append("abstained on a broad question")
        if len(sources) < q["min_sources"]:
            sc.reasons.append(f"overview cites {len(sources)} articles, expected at least {q['min_sources']}")
        if len(answer.citations) < 2:
            sc.reasons.append("an overview needs at least two cited sentences")
        if missing:
            sc.reasons.append("missing: " + "; ".join(" | ".join(f) for f in missing))
        sc.correct = not answer.abstained and len(sources) >= q["min_sources"] and len(answer.citations) >= 2 \
            and not missing
    else:
        if answer.abstained:
            sc.reasons.append("abstained on an answerable question")
        missing = [facts for facts in q["required"] if not any_match(facts, text)]
        wrong = [w for w in q["wrong"] if matches(w, text)]
        if missing:
            sc.reasons.append("missing: " + "; ".join(" | ".join(f) for f in missing))
        if wrong:
            sc.reasons.append("contains wrong value: " + ", ".join(wrong))
        sc.correct = not answer.abstained and not missing and not wrong
    # citations -------------------------------------------------------------------------------------
    retrieved = {c.source for c in answer.contexts}
    sc.total_citations = len(answer.citations)
    for c in answer.citations:
        try:
            ok = read_text(docs_dir / c.source)[c.start : c.end] == c.quote and c.source in retrieved
        except OSError:
            ok = False
        sc.valid_citations += ok
        if not ok:
            sc.reasons.append(f"invalid citation {c.source}:{c.start}-{c.end}")
    sentences = split_answer_sentences(text)
    facts = [f for facts in q["required"] for f in facts]
    cited_support: set[int] = set()
    for sentence, markers in sentences:
        cites = [answer.citations[m - 1] for m in markers if 0 < m <= len(answer.citations)]
        for m, c in zip(markers, cites):
            if _supports(c.quote, sentence) or any(matches(f, c.quote) and matches(f, sentence) for f in facts):
                cited_support.add(m)
        carried = [f for f in facts if matches(f, sentence)]
        if carried:
            sc.fact_sentences += 1
            if any(any(matches(f, c.quote) for f in carried) for c in cites):
                sc.fact_sentences_cited += 1
            else:
                sc.reasons.append(f"fact not backed by its citations: {sentence[:80]!r}")
    sc.citations_supporting = len(cited_support)
    # conflicts -------------------------------------------------------------------------------------
    if q.get("sides"):
        ok = True
        for side in q["sides"]:
            if not any(c.source == side["source"] and any_match(side["value"], c.quote) for c in answer.citations):
                ok = False
                sc.reasons.append(f"side not surfaced: {side['source']} {side['value']}")
        sc.conflict_ok = ok
    return sc


def _rank(sources: list[str], support: set[str]) -> int | None:
    for i, s in enumerate(sources, start=1):
        if s in support:
            return i
    return None


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


def summarize(scored: list[Scored]) -> dict[str, Any]:
    answerable = [s for s in scored if s.question["answerable"]]
    unanswerable = [s for s in scored if not s.question["answerable"]]
    answered = [s for s in scored if s.answer is not None]
    m: dict[str, Any] = {
        "questions": len(scored),
        "answer_accuracy": _ratio(sum(s.correct for s in answerable), len(answerable)),
        "overall_accuracy": _ratio(sum(s.correct for s in scored), len(scored)),
        "citation_validity": _ratio(sum(s.valid_citations for s in answered), sum(s.total_citations for s in answered)),
        "citation_recall": _ratio(
            sum(s.fact_sentences_cited for s in answered), sum(s.fact_sentences for s in answered)
        ),
        "citation_precision": _ratio(
            sum(s.citations_supporting for s in answered), sum(s.total_citations for s in answered)
        ),
        "refusal_recall": _ratio(sum(bool(s.answer and s.answer.abstained) for s in unanswerable), len(unanswerable)),
        "false_refusal_rate": _ratio(sum(bool(s.answer and s.answer.abstained) for s in answerable), len(answerable)),
    }
    checks = [c for s in answered if s.answer for c in s.answer.sentences]
    if checks:  # LLM answers: what the verifier did with the model's sentences
        m["llm_sentences"] = len(checks)
        m["llm_sentences_kept"] = sum(c.supported for c in checks)
        m["llm_sentences_dropped"] = sum(1 for c in checks if not c.supported and c.reason != REFUSED)
        m["llm_sentences_repaired"] = sum(c.repaired for c in checks)
        m["llm_refusals"] = sum(1 for c in checks if c.reason == REFUSED)
    conflicts = [s for s in scored if s.conflict_ok is not None]
    m["conflicts_surfaced"] = _ratio(sum(bool(s.conflict_ok) for s in conflicts), len(conflicts))
    for name, attr in (("ours", "rank"), ("baseline_dense", "baseline_rank")):
        ranks = [getattr(s, attr) for s in answerable if s.question["support"]]
        for k in K_VALUES:
            m[f"{name}_hit@{k}"] = _ratio(sum(1 for r in ranks if r is not None and r <= k), len(ranks))
        m[f"{name}_mrr"] = _ratio(sum(1.0 / r for r in ranks if r), len(ranks))
    return m


CATEGORY_METRICS = ("answer_accuracy", "false_refusal_rate", "refusal_recall", "citation_validity",
                    "citation_recall", "citation_precision")


def per_category(scored: list[Scored]) -> dict[str, dict[str, Any]]:
    """Per category: accuracy over all its questions, the answer/refusal/citation metrics, latency."""
    groups: dict[str, list[Scored]] = defaultdict(list)
    for s in scored:
        groups[s.question["category"]].append(s)
    out = {}
    for cat, items in sorted(groups.items()):
        m = summarize(items)
        row: dict[str, Any] = {"n": len(items), "correct": sum(s.correct for s in items),
                               "accuracy": _ratio(sum(s.correct for s in items), len(items))}
        row.update({k: m[k] for k in CATEGORY_METRICS})
        row["latency_p50_ms"] = round(1000 * statistics.median(s.seconds for s in items), 1)
        out[cat] = row
    return out


def check(metrics: dict[str, Any], thresholds: dict[str, dict[str, float]]) -> list[str]:
    """Failures against thresholds: {"min": {...}, "max": {...}}. A metric the questions could not measure
    (None: e.g. refusal recall over questions that are all answerable) is no failure: see unmeasured()."""
    failures = []
    for name, floor in thresholds.get("min", {}).items():
        v = metrics.get(name)
        if v is not None and v < floor:
            failures.append(f"{name} = {_fmt(v)} is under the minimum {floor}")
    for name, ceiling in thresholds.get("max", {}).items():
        v = metrics.get(name)
        if v is not None and v > ceiling:
            failures.append(f"{name} = {_fmt(v)} is over the maximum {ceiling}")
    return failures


def unmeasured(metrics: dict[str, Any], thresholds: dict[str, dict[str, float]]) -> list[str]:
    """The gated metrics the questions could not measure."""
    gated = [*thresholds.get("min", {}), *thresholds.get("max", {})]
    return [name for name in dict.fromkeys(gated) if metrics.get(name) is None]


def run(kb: Assistant, questions: list[dict[str, Any]]) -> tuple[list[Scored], dict[str, Any]]:
    docs_dir = Path(kb.settings.docs_dir)
    retriever = kb._ready()
    scored: list[Scored] = []
    latencies: list[float] = []
    for q in questions:
        answer, error = None, ""
        t0 = time.perf_counter()
        try:
            answer = kb.ask(q["question"])
        except AssistantError as exc:
            error = str(exc)
        latencies.append(time.perf_counter() - t0)
        s = score(q, answer, docs_dir, error)
        s.seconds = latencies[-1]
        support = {x["source"] for x in q["support"]}
        if q["answerable"] and support:
            ours = [c.source for c in retriever.retrieve(q["question"], k=max(K_VALUES))]
            base = [c.source for c in retriever.dense_only(q["question"], k=max(K_VALUES))]
            s.rank, s.baseline_rank = _rank(ours, support), _rank(base, support)
        scored.append(s)
    metrics = summarize(scored)
    metrics["latency_p50_ms"] = round(1000 * statistics.median(latencies), 1) if latencies else None
    firsts = [s.answer.timings["first_sentence"] for s in scored if s.answer and "first_sentence" in s.answer.timings]
    if firsts:
        metrics["first_verified_sentence_p50_s"] = round(statistics.median(firsts), 2)
        metrics["total_p50_s"] = round(statistics.median(latencies), 2)
    return scored, metrics


def _fmt(v: Any) -> str:
    return "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def gate_line(failures: list[str], skipped: list[str], questions: int) -> str:
    """What the gate decided, as printed: PASS or FAIL with each failure, and what was not measured."""
    out = "gate: PASS\n" if not failures else "gate: FAIL\n  " + "\n  ".join(failures) + "\n"
    if skipped:
        out += f"  not measured (none of these {questions} questions tests it): {', '.join(skipped)}\n"
    return out


def report_markdown(metrics: dict[str, Any], cats: dict[str, Any], scored: list[Scored], failures: list[str],
                    thresholds: dict[str, dict[str, float]], answerer: str, skipped: list[str] | None = None) -> str:
    lines = [f"# Eval report — answerer: {answerer}", ""]
    lines.append("**Gate: PASS**" if not failures else "**Gate: FAIL** — " + "; ".join(failures))
    if skipped:
        lines[-1] += " (not measured on this subset: " + ", ".join(skipped) + ")"
    lines += ["", "## Summary", "", "| metric | value | threshold |", "| --- | --- | --- |"]
    for name, v in metrics.items():
        t = ""
        if name in thresholds.get("min", {}):
            t = f"≥ {thresholds['min'][name]}"
        elif name in thresholds.get("max", {}):
            t = f"≤ {thresholds['max'][name]}"
        lines.append(f"| {name} | {_fmt(v)} | {t} |")
    lines += ["", "Retrieval: `ours` is hybrid dense+BM25 with RRF; `baseline_dense` is a plain LlamaIndex",
              "VectorStoreIndex retriever over the same Chroma collection and embeddings.", ""]
    lines += ["## Per category", "", "accuracy counts every question of the category (answered right or rightly "
              "refused); false refusals are over its answerable questions, refusal recall over its unanswerable "
              "ones.", "", "| category | n | correct | accuracy | false refusals | refusal recall | citation "
              "validity | citation recall | citation precision | p50 ms |", "|" + " --- |" * 10]
    for cat, row in cats.items():
        lines.append(f"| {cat} | {row['n']} | {row['correct']} | {_fmt(row['accuracy'])} | "
                     f"{_fmt(row['false_refusal_rate'])} | {_fmt(row['refusal_recall'])} | "
                     f"{_fmt(row['citation_validity'])} | {_fmt(row['citation_recall'])} | "
                     f"{_fmt(row['citation_precision'])} | {_fmt(row['latency_p50_ms'])} |")
    bad = [s for s in scored if not s.correct or s.reasons]
    lines += ["", f"## Failures and warnings ({len(bad)})", ""]
    for s in bad:
        q = s.question
        lines.append(f"### {q['id']} [{q['category']}] {q['question']}")
        lines.append("")
        lines.append(f"- verdict: {'correct' if s.correct else 'WRONG'}; why: {'; '.join(s.reasons) or '—'}")
        if q["required"]:
            lines.append("- expected: " + " AND ".join("(" + " | ".join(f) + ")" for f in q["required"]))
        if s.answer is not None:
            lines.append(f"- answer: {s.answer.text}")
            for n, c in enumerate(s.answer.citations, start=1):
                lines.append(f"  - [{n}] {c.source} {c.start}-{c.end}: “{c.quote[:200]}”")
            lines.append(f"- retrieved: {', '.join(c.source[:3] for c in s.answer.contexts)}; supporting rank "
                         f"ours={s.rank} baseline={s.baseline_rank}")
        lines.append("")
    return "\n".join(lines) + "\n"


def corpora(config: dict[str, Any], args: Any) -> dict[str, dict[str, Path]]:
    """The corpora to evaluate: every one in eval/config.json, one of them (--corpus), or a folder and
    question file of your own (--docs with --questions)."""
    if getattr(args, "questions", None):
        docs = Path(args.docs) if getattr(args, "docs", None) else REPO_ROOT / "seeds"
        return {"custom": {"docs": docs, "questions": Path(args.questions)}}
    out = {name: {"docs": REPO_ROOT / spec["docs"], "questions": REPO_ROOT / spec["questions"]}
           for name, spec in config["corpora"].items()}
    if getattr(args, "corpus", None):
        if args.corpus not in out:
            raise AssistantError(f"Unknown corpus {args.corpus!r}; the eval has: {', '.join(out)}.")
        out = {args.corpus: out[args.corpus]}
    return out


def _assistant(name: str, spec: dict[str, Path], args: Any, answerer: str) -> Assistant:
    index = Path(args.index) / name if getattr(args, "index", None) else None
    kb = Assistant(docs_dir=spec["docs"], index_dir=index, answerer=answerer)
    kb.sync()
    return kb


def run_cli(args: Any) -> int:
    """`assistant eval`: per corpus results.json + report.md, exit 1 when a gate fails."""
    import sys

    answerer = args.answerer
    config = load_config()
    if getattr(args, "fit", False):
        return fit_cli(args, config)
    if getattr(args, "verifier", False):
        return verifier_cli(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = False
    summary_lines = [f"# Eval — answerer: {answerer}", "", "| corpus | questions | gate | " + " | ".join(
        ("answer_accuracy", "false_refusal_rate", "refusal_recall", "citation_validity", "latency_p50_ms")) + " |",
        "|" + " --- |" * 8]
    for name, spec in corpora(config, args).items():
        kb = _assistant(name, spec, args, answerer)
        questions = load_questions(spec["questions"])
        if args.limit:
            questions = questions[: args.limit]
        thresholds = config["thresholds"][answerer].get(name, {}) if name != "custom" else {}
        t0 = time.perf_counter()
        scored, metrics = run(kb, questions)
        metrics["seconds"] = round(time.perf_counter() - t0, 1)
        cats = per_category(scored)
        failures = check(metrics, thresholds)
        skipped = unmeasured(metrics, thresholds)
        if skipped and not args.limit:  # the whole set must measure what the gate checks
            failures += [f"{name} was not measured: no question of the set tests it (or the threshold's name is "
                         "misspelled)" for name in skipped]
            skipped = []
        failed = failed or bool(failures)
        where = out / name
        where.mkdir(parents=True, exist_ok=True)
        results = {
            "corpus": name, "answerer": answerer, "metrics": metrics, "thresholds": thresholds,
            "failures": failures, "not_measured": skipped, "per_category": cats,
            "questions": [
                {
                    "id": s.question["id"], "category": s.question["category"], "question": s.question["question"],
                    "correct": s.correct, "reasons": s.reasons, "rank": s.rank, "baseline_rank": s.baseline_rank,
                    "answer": s.answer.model_dump(exclude={"contexts"}) if s.answer else None, "error": s.error,
                }
                for s in scored
            ],
        }
        (where / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
        (where / "report.md").write_text(
            report_markdown(metrics, cats, scored, failures, thresholds, f"{answerer}, corpus {name}", skipped),
            encoding="utf-8")
        summary_lines.append(f"| {name} | {len(questions)} | {'FAIL' if failures else 'PASS'} | " + " | ".join(
            _fmt(metrics.get(k)) for k in ("answer_accuracy", "false_refusal_rate", "refusal_recall",
                                            "citation_validity", "latency_p50_ms")) + " |")
        sys.stdout.write(
            f"== corpus {name}\n" + "\n".join(f"{k:>24}: {_fmt(v)}" for k, v in metrics.items())
            + f"\nreport: {where / 'report.md'}\n" + gate_line(failures, skipped, len(questions))
        )
    if not args.corpus and not args.limit:
        conv_failures = conversations_cli(out, config)
        failed = failed or bool(conv_failures)
        summary_lines += ["", f"Conversations (follow-up rewriting): {'FAIL' if conv_failures else 'PASS'} — "
                          f"see {out / 'conversations' / 'report.md'}"]
    (out / "report.md").write_text("\n".join(summary_lines) + "\n", encoding="utf-8")
    return 1 if failed else 0


def conversation_scores(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Precision and recall of "this question needs rewriting" over the conversations' last turns, and the
    share of rewrites that keep what the conversation was about (every `expect` word, no `reject` word)."""
    from .followup import needs_rewrite, standalone

    tp = fp = fn = 0
    kept = needed = 0
    out = []
    for r in rows:
        predicted = needs_rewrite(r["turns"][-1])
        rewritten = standalone(r["turns"])
        low = rewritten.lower()
        content_ok = all(e in low for e in r.get("expect", [])) and not any(x in low for x in r.get("reject", []))
        tp += predicted and r["rewrite"]
        fp += predicted and not r["rewrite"]
        fn += r["rewrite"] and not predicted
        if r["rewrite"]:
            needed += 1
            kept += content_ok
        out.append({"id": r["id"], "kind": r["kind"], "turns": r["turns"], "expected": r["rewrite"],
                    "predicted": predicted, "rewritten": rewritten,
                    "correct": predicted == r["rewrite"] and (content_ok or not r["rewrite"])})
    metrics = {"rewrite_precision": round(tp / max(tp + fp, 1), 4), "rewrite_recall": round(tp / max(tp + fn, 1), 4),
               "rewrite_keeps_topic": round(kept / max(needed, 1), 4), "conversations": len(rows)}
    return metrics, out


def conversations_cli(out: Path, config: dict[str, Any]) -> list[str]:
    """Score eval/conversations.jsonl; report the half the rules were tuned on and the held-out half apart."""
    import sys

    rows = load_questions(EVAL_DIR / "conversations.jsonl")
    metrics, scored = conversation_scores(rows)
    parts = {}
    for part, held in (("tuned on", False), ("held out", True)):
        sel = [r for r in rows if (int(re.sub(r"\D", "", r["id"])) % 2 == 0) == held]
        parts[part] = conversation_scores(sel)[0]
    thresholds = config["thresholds"].get("conversations", {})
    failures = check(metrics, thresholds)
    failures += [f"{name} was not measured: no conversation tests it (or the threshold's name is misspelled)"
                 for name in unmeasured(metrics, thresholds)]
    where = out / "conversations"
    where.mkdir(parents=True, exist_ok=True)
    (where / "results.json").write_text(json.dumps({"metrics": metrics, "parts": parts, "failures": failures,
                                                    "conversations": scored}, indent=2, ensure_ascii=False),
                                        encoding="utf-8")
    lines = ["# Follow-up rewriting (offline rules, assistant/followup.py)", "",
             "| set | conversations | precision | recall | rewrites keep the topic |",
             "| --- | --- | --- | --- | --- |"]
    for name, m in [("all", metrics), *parts.items()]:
        lines.append(f"| {name} | {m['conversations']} | {m['rewrite_precision']:.3f} | {m['rewrite_recall']:.3f} | "
                     f"{m['rewrite_keeps_topic']:.3f} |")
    lines += ["", "| id | kind | last turn | expected | rewritten as |", "| --- | --- | --- | --- | --- |"]
    for r in scored:
        mark = "" if r["correct"] else " **✗**"
        lines.append(f"| {r['id']}{mark} | {r['kind']} | {r['turns'][-1]} | {'rewrite' if r['expected'] else 'as is'} "
                     f"| {r['rewritten'] if r['predicted'] else '(as typed)'} |")
    (where / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    sys.stdout.write("== conversations\n" + "\n".join(f"{k:>24}: {_fmt(v)}" for k, v in metrics.items())
                     + ("\ngate: PASS\n" if not failures else "\ngate: FAIL\n  " + "\n  ".join(failures) + "\n"))
    return failures


def labelled(kb: Assistant, questions: list[dict[str, Any]], corpus: str) -> list[selector.Question]:
    """Each question's candidate sentences with their features and labels (1: the sentence holds a required
    fact and no wrong value), for fitting the selector. Broad questions take the overview path: skipped."""
    import numpy as np

    from .answer import score as score_candidates

    out = []
    for q in questions:
        if q.get("min_sources") is not None:
            continue
        _, query, evidence, _, _ = kb._retrieve(q["question"])
        sc = score_candidates(query, evidence)
        facts = q["required"]
        x = np.array([c.features for c in sc.cands]) if sc.cands else np.zeros((0, len(selector.FEATURES)))
        y = np.array([bool(q["answerable"]) and any(any_match(f, c.text) for f in facts)
                      and not any(matches(w, c.text) for w in q["wrong"]) for c in sc.cands], dtype=bool)
        allowed = np.array([not c.violations for c in sc.cands], dtype=bool)
        conf = np.array([c.confidence for c in sc.cands])
        out.append(selector.Question(q["id"], corpus, bool(q["answerable"]), x, y, allowed, bool(sc.unknown), conf))
    return out


def fit_cli(args: Any, config: dict[str, Any]) -> int:
    """`assistant eval --fit`: cross-validate the selector over every corpus's questions (held-out figures),
    then fit it on all of them and write assistant/selector.json."""
    import sys

    data: list[selector.Question] = []
    for name, spec in corpora(config, args).items():
        kb = _assistant(name, spec, args, "offline")
        data += labelled(kb, load_questions(spec["questions"]), name)
    cv = selector.cross_validate(data)
    by_corpus = {}
    for name in sorted({q.corpus for q in data}):  # fit on the other corpora, test on this one
        train = [q for q in data if q.corpus != name]
        if train:
            m = selector.fit_questions(train)
            by_corpus[name] = selector.summarize([(q, selector.decide(m, q, m.threshold), m.threshold)
                                                  for q in data if q.corpus == name])[name]
    model = selector.fit_questions(data)
    model.report = {"cross_validation_5fold": cv, "train_on_other_corpora": by_corpus,
                    "questions": len(data), "sentences": int(sum(len(q.x) for q in data))}
    selector.MODEL_FILE.write_text(model.to_json() + "\n", encoding="utf-8")
    sys.stdout.write(json.dumps(model.report, indent=2) + f"\nthreshold {model.threshold}\n"
                     f"wrote {selector.MODEL_FILE}\n")
    return 0


def verifier_report(cases: list[dict[str, Any]], embed: Any) -> dict[str, Any]:
    """Keep rate of supported cases and drop rate of unsupported ones, per kind and per half (the even
    cases tuned the verifier's thresholds; the odd ones are the report)."""
    from .verify import verify

    rows = []
    for c in cases:
        v = verify(c["claim"], c["sources"], embed, c.get("context", ""))
        rows.append((c, v))
    out: dict[str, Any] = {}
    for half, pick in (("tuning (even)", 0), ("held out (odd)", 1), ("all", None)):
        sel = [(c, v) for c, v in rows if pick is None or int(c["id"][1:]) % 2 == pick]
        sup = [v.supported for c, v in sel if c["supported"]]
        uns = [not v.supported for c, v in sel if not c["supported"]]
        out[half] = {"cases": len(sel), "kept_supported": _ratio(sum(sup), len(sup)),
                     "dropped_unsupported": _ratio(sum(uns), len(uns))}
    kinds: dict[str, list[bool]] = defaultdict(list)
    for c, v in rows:
        kinds[c["kind"]].append(v.supported == c["supported"])
    out["per_kind"] = {k: {"cases": len(v), "right": _ratio(sum(v), len(v))} for k, v in sorted(kinds.items())}
    out["errors"] = [{"id": c["id"], "kind": c["kind"], "claim": c["claim"], "source": c["sources"][0],
                      "expected": c["supported"], "reason": v.reason} for c, v in rows if v.supported != c["supported"]]
    return out


def verifier_cli(args: Any) -> int:
    """`assistant eval --verifier`: precision/recall of the LLM-answer verifier on eval/verifier_cases.jsonl."""
    import sys

    from .embed import OnnxEmbedder

    cases = load_questions(EVAL_DIR / "verifier_cases.jsonl")
    embedder = OnnxEmbedder()
    rep = verifier_report(cases, embedder.embed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Verifier report", "", "Cases: eval/verifier_cases.jsonl (eval/make_verifier_cases.py). Kept = "
             "supported cases the verifier keeps; dropped = unsupported cases it drops. Thresholds were tuned on "
             "the even cases; the odd ones are held out.", "",
             "| half | cases | kept supported | dropped unsupported |",
             "| --- | --- | --- | --- |"]
    for half in ("tuning (even)", "held out (odd)", "all"):
        r = rep[half]
        lines.append(f"| {half} | {r['cases']} | {_fmt(r['kept_supported'])} | {_fmt(r['dropped_unsupported'])} |")
    lines += ["", "| kind | cases | judged right |", "| --- | --- | --- |"]
    lines += [f"| {k} | {r['cases']} | {_fmt(r['right'])} |" for k, r in rep["per_kind"].items()]
    lines += ["", f"## Errors ({len(rep['errors'])})", ""]
    lines += [f"- {e['id']} [{e['kind']}] expected {'supported' if e['expected'] else 'unsupported'}, got "
              f"{e['reason']!r}: “{e['claim']}” — source “{e['source']}”" for e in rep["errors"]]
    (out / "verifier-report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "verifier.json").write_text(json.dumps(rep, indent=2, ensure_ascii=False), encoding="utf-8")
    sys.stdout.write("\n".join(lines[5:9]) + f"\nreport: {out / 'verifier-report.md'}\n")
    ok = all((rep["held out (odd)"][k] or 0) >= 0.95 for k in ("kept_supported", "dropped_unsupported"))
    return 0 if ok else 1


__all__ = ["check", "load_questions", "matches", "question_kind", "run", "score", "summarize"]
