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

from .answer import question_kind
from .assistant import Assistant
from .citations import split_answer_sentences
from .errors import AssistantError
from .ingest import read_text
from .retrieve import terms
from .schema import Answer
from .settings import REPO_ROOT

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
        m["llm_sentences_dropped"] = len(checks) - m["llm_sentences_kept"]
    conflicts = [s for s in scored if s.conflict_ok is not None]
    m["conflicts_surfaced"] = _ratio(sum(bool(s.conflict_ok) for s in conflicts), len(conflicts))
    for name, attr in (("ours", "rank"), ("baseline_dense", "baseline_rank")):
        ranks = [getattr(s, attr) for s in answerable if s.question["support"]]
        for k in K_VALUES:
            m[f"{name}_hit@{k}"] = _ratio(sum(1 for r in ranks if r is not None and r <= k), len(ranks))
        m[f"{name}_mrr"] = _ratio(sum(1.0 / r for r in ranks if r), len(ranks))
    return m


def per_category(scored: list[Scored]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Scored]] = defaultdict(list)
    for s in scored:
        groups[s.question["category"]].append(s)
    return {
        cat: {
            "n": len(items),
            "correct": sum(s.correct for s in items),
            "accuracy": _ratio(sum(s.correct for s in items), len(items)),
        }
        for cat, items in sorted(groups.items())
    }


def check(metrics: dict[str, Any], thresholds: dict[str, dict[str, float]]) -> list[str]:
    """Failures against thresholds: {"min": {...}, "max": {...}}."""
    failures = []
    for name, floor in thresholds.get("min", {}).items():
        v = metrics.get(name)
        if v is None or v < floor:
            failures.append(f"{name} = {v} is under the minimum {floor}")
    for name, ceiling in thresholds.get("max", {}).items():
        v = metrics.get(name)
        if v is None or v > ceiling:
            failures.append(f"{name} = {v} is over the maximum {ceiling}")
    return failures


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
        support = {x["source"] for x in q["support"]}
        if q["answerable"] and support:
            ours = [c.source for c in retriever.retrieve(q["question"], k=max(K_VALUES))]
            base = [c.source for c in retriever.dense_only(q["question"], k=max(K_VALUES))]
            s.rank, s.baseline_rank = _rank(ours, support), _rank(base, support)
        scored.append(s)
    metrics = summarize(scored)
    metrics["latency_p50_ms"] = round(1000 * statistics.median(latencies), 1) if latencies else None
    return scored, metrics


def _fmt(v: Any) -> str:
    return "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def report_markdown(metrics: dict[str, Any], cats: dict[str, Any], scored: list[Scored], failures: list[str],
                    thresholds: dict[str, dict[str, float]], answerer: str) -> str:
    lines = [f"# Eval report — answerer: {answerer}", ""]
    lines.append("**Gate: PASS**" if not failures else "**Gate: FAIL** — " + "; ".join(failures))
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
    lines += ["## Per category", "", "| category | n | correct | accuracy |", "| --- | --- | --- | --- |"]
    for cat, row in cats.items():
        lines.append(f"| {cat} | {row['n']} | {row['correct']} | {_fmt(row['accuracy'])} |")
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


def run_cli(args: Any) -> int:
    """`assistant eval`: write results.json + report.md, exit 1 when the gate fails."""
    import sys

    answerer = args.answerer
    kb = Assistant(docs_dir=args.docs, index_dir=args.index, answerer=answerer)
    kb.sync()
    questions = load_questions(Path(args.questions) if args.questions else None)
    if args.limit:
        questions = questions[: args.limit]
    if getattr(args, "calibrate", False):
        sweep = calibrate(kb, questions)
        floor = load_config().get("calibration", {}).get("min_refusal_recall", 0.0)
        eligible = [r for r in sweep if r["refusal_recall"] >= floor] or sweep
        best = max(eligible, key=lambda r: (r["overall_accuracy"], -r["false_refusal_rate"]))
        for r in sweep[::2]:
            sys.stdout.write(f"{r['threshold']:.2f}  acc={r['overall_accuracy']:.3f}  refusal_recall="
                             f"{r['refusal_recall']:.3f}  false_refusal={r['false_refusal_rate']:.3f}\n")
        sys.stdout.write(f"best threshold: {best['threshold']:.2f} ({best})\n")
        return 0
    config = load_config()
    thresholds = config["thresholds"][answerer]
    t0 = time.perf_counter()
    scored, metrics = run(kb, questions)
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    cats = per_category(scored)
    failures = check(metrics, thresholds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "answerer": answerer,
        "metrics": metrics,
        "thresholds": thresholds,
        "failures": failures,
        "per_category": cats,
        "questions": [
            {
                "id": s.question["id"], "category": s.question["category"], "question": s.question["question"],
                "correct": s.correct, "reasons": s.reasons, "rank": s.rank, "baseline_rank": s.baseline_rank,
                "answer": s.answer.model_dump(exclude={"contexts"}) if s.answer else None, "error": s.error,
            }
            for s in scored
        ],
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / "report.md").write_text(
        report_markdown(metrics, cats, scored, failures, thresholds, answerer), encoding="utf-8"
    )
    sys.stdout.write(
        "\n".join(f"{k:>24}: {_fmt(v)}" for k, v in metrics.items())
        + f"\nreport: {out / 'report.md'}\n"
        + ("gate: PASS\n" if not failures else "gate: FAIL\n  " + "\n  ".join(failures) + "\n")
    )
    return 1 if failures else 0


__all__ = ["check", "load_questions", "matches", "question_kind", "run", "score", "summarize"]


def calibrate(kb: Assistant, questions: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Sweep the abstention threshold over the whole question set.

    Answers every question once with abstention off, then for each threshold counts what would
    be right: answerable questions answered correctly plus unanswerable ones refused.
    """
    saved = kb.settings.abstain_threshold
    kb.settings.abstain_threshold = 0.0
    docs_dir = Path(kb.settings.docs_dir)
    rows = []
    try:
        for q in questions:
            a = kb.ask(q["question"])
            rows.append((a.confidence, bool(q["answerable"]), score(q, a, docs_dir).correct))
    finally:
        kb.settings.abstain_threshold = saved
    n_ans = sum(1 for _, ans, _ in rows if ans) or 1
    n_un = sum(1 for _, ans, _ in rows if not ans) or 1
    sweep = []
    for i in range(0, 81):
        t = i / 100
        right = sum((c >= t and ok) if ans else (c < t) for c, ans, ok in rows)
        sweep.append({
            "threshold": t,
            "overall_accuracy": round(right / len(rows), 4),
            "refusal_recall": round(sum(c < t for c, ans, _ in rows if not ans) / n_un, 4),
            "false_refusal_rate": round(sum(c < t for c, ans, _ in rows if ans) / n_ans, 4),
        })
    return sweep
