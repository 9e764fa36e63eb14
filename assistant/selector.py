"""The answer selector: a logistic model that says how likely a sentence answers a question.

Its weights and its refusal threshold are fitted on labelled data (the eval's questions over two
corpora) by ``assistant eval --fit``, which also reports grouped cross-validation: every figure it
reports comes from questions held out of the fit. The fitted model ships as ``selector.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_FILE = Path(__file__).with_name("selector.json")

FEATURES = (
    "cos",  # the sentence's MiniLM similarity to the question
    "cos_gap",  # how far under the best sentence of this question (0 for the best)
    "coverage",  # idf-weighted share of the question's terms the sentence has
    "coverage_gap",
    "kind_any",  # the question asks for a number/date/name/place and the sentence has one
    "kind_near",  # ... next to the question's own words
    "kind_missing",  # it asks for one and the sentence has none
    "chunk_rank",  # 1 / (1 + rank of the chunk it came from)
    "heading",  # the sentence is a question (a heading that asks, not answers)
    "short",  # under 25 characters
    "cos_x_coverage",
    "top_cos",  # how well the best sentence of this question matches it (a question-level signal)
    "top_coverage",
    "is_top_cos",
    "is_top_coverage",
    "question_oov",  # idf-weighted share of the question's terms no article has (question-level)
    "article_coverage",  # idf-weighted share of the question's terms the sentence's article has
    "chunk_dense",  # the MiniLM similarity of the sentence's whole chunk to the question
    "top_chunk_dense",  # ... of the best chunk retrieved for this question
    "context_coverage",  # coverage by the sentence with its neighbours (who "he" or "Smirnov" is)
)


def features(cos: float, coverage: float, kind_any: bool, kind_near: bool, kind: str, rank: int, sentence: str,
             top_cos: float, top_cov: float, question_oov: float = 0.0, article_coverage: float = 0.0,
             chunk_dense: float = 0.0, top_chunk_dense: float = 0.0, context_coverage: float = 0.0) -> list[float]:
    asks_kind = kind != "other"
    return [
        cos,
        cos - top_cos,
        coverage,
        coverage - top_cov,
        1.0 if kind_any else 0.0,
        1.0 if kind_near else 0.0,
        1.0 if asks_kind and not kind_any else 0.0,
        1.0 / (1 + rank),
        1.0 if sentence.rstrip().endswith("?") else 0.0,
        1.0 if len(sentence) < 25 else 0.0,
        cos * coverage,
        top_cos,
        top_cov,
        1.0 if cos >= top_cos else 0.0,
        1.0 if coverage >= top_cov else 0.0,
        question_oov,
        article_coverage,
        chunk_dense,
        top_chunk_dense,
        context_coverage,
    ]


@dataclass
class Model:
    weights: list[float]
    bias: float
    mean: list[float]
    scale: list[float]
    threshold: float = 0.5
    report: dict[str, object] = field(default_factory=dict)

    def predict(self, x: list[float]) -> float:
        z = self.bias + sum(w * (v - m) / s for w, v, m, s in zip(self.weights, x, self.mean, self.scale))
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))

    def predict_many(self, xs: np.ndarray) -> np.ndarray:
        z = self.bias + ((xs - np.array(self.mean)) / np.array(self.scale)) @ np.array(self.weights)
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -40, 40))))

    def to_json(self) -> str:
        return json.dumps({"features": list(FEATURES), "weights": self.weights, "bias": self.bias,
                           "mean": self.mean, "scale": self.scale, "threshold": self.threshold,
                           "report": self.report}, indent=2)


# Used only when selector.json is missing: weights of the same form, set by hand.
_FALLBACK = Model(weights=[1.5, 1.0, 1.5, 1.0, 0.3, 0.3, -0.5, 0.3, -1.0, -0.5, 0.5, 0.5, 0.5, 0.3, 0.3, -1.0, 0.5,
                           0.5, 0.5, 0.3], bias=-2.0,
                  mean=[0.0] * len(FEATURES), scale=[1.0] * len(FEATURES), threshold=0.5)


@lru_cache(maxsize=1)
def load(path: Path = MODEL_FILE) -> Model:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return _FALLBACK
    if list(d.get("features", [])) != list(FEATURES):
        return _FALLBACK
    return Model(weights=[float(w) for w in d["weights"]], bias=float(d["bias"]), mean=[float(m) for m in d["mean"]],
                 scale=[float(s) for s in d["scale"]], threshold=float(d["threshold"]), report=d.get("report", {}))


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 50) -> Model:
    """L2-regularised logistic regression by Newton's method on standardised features."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    xb = np.hstack([z, np.ones((len(z), 1))])
    w = np.zeros(xb.shape[1])
    reg = np.eye(xb.shape[1]) * l2
    reg[-1, -1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -40, 40)))
        grad = xb.T @ (p - y) + reg @ w
        hess = (xb.T * (p * (1 - p))) @ xb + reg
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return Model(weights=[float(v) for v in w[:-1]], bias=float(w[-1]), mean=[float(v) for v in mean],
                 scale=[float(v) for v in scale])


#: How much a question term found only in a neighbouring sentence counts (5-fold CV over both corpora: 0.8 and
#: 0.9 handle the same held-out questions; 1.0, a neighbour as good as the sentence, answers more wrongly).
CONTEXT_WEIGHT = 0.85


def confidence(cos: float, coverage: float, top_chunk_dense: float, kind_missing: bool,
               context_coverage: float = 0.0) -> float:
    """The evidence score the refusal threshold applies to, for the sentence the model ranks first: how much of
    the question it carries (its terms, some of them in the sentences beside it, or its meaning for a
    paraphrase) and how close the best chunk is.
    (Lowering it for a question whose words no article has was tried: refusal recall +0.03, false refusals
    +0.06 on the seeds set.)"""
    score = 0.65 * max(coverage, CONTEXT_WEIGHT * context_coverage, cos) + 0.35 * max(top_chunk_dense, 0.0)
    return score * (0.85 if kind_missing else 1.0)


@dataclass
class Question:
    """One labelled question for fitting: its candidates' features and labels (1 = answers it), whether it is
    answerable, and which candidates the hard constraints disqualified."""

    id: str
    corpus: str
    answerable: bool
    x: np.ndarray
    y: np.ndarray
    allowed: np.ndarray  # no constraint violation
    refused_anyway: bool  # unknown key terms: refused whatever the model says
    conf: np.ndarray  # the evidence score each candidate would answer with (see confidence())


def decide(model: Model, q: Question, threshold: float) -> bool:
    """Is the question handled right: answerable → the best allowed sentence answers it and clears the
    threshold; unanswerable → refused."""
    if q.refused_anyway or not len(q.x) or not q.allowed.any():
        return not q.answerable
    p = model.predict_many(q.x)
    p[~q.allowed] = -1.0
    best = int(np.argmax(p))
    if q.conf[best] < threshold:
        return not q.answerable
    return bool(q.answerable and q.y[best])


MIN_REFUSAL_RECALL = 0.8


def best_threshold(model: Model, questions: list[Question], min_refusal_recall: float = MIN_REFUSAL_RECALL) -> float:
    """The threshold with the most questions handled right among those that refuse at least
    `min_refusal_recall` of the unanswerable ones in every corpus (a wrong answer costs a reader more than a
    refusal); ties: the lowest."""
    grid = [t / 100 for t in range(5, 96)]
    corpora = sorted({q.corpus for q in questions})
    best, best_score = grid[-1], -1
    for t in grid:
        ok = [decide(model, q, t) for q in questions]
        recall_ok = True
        for c in corpora:
            una = [o for q, o in zip(questions, ok) if q.corpus == c and not q.answerable]
            if una and sum(una) / len(una) < min_refusal_recall:
                recall_ok = False
        if recall_ok and sum(ok) > best_score:
            best, best_score = t, sum(ok)
    return best


def fit_questions(questions: list[Question], l2: float = 1.0) -> Model:
    xs = [q.x[q.allowed] for q in questions if len(q.x) and q.allowed.any()]
    ys = [q.y[q.allowed] for q in questions if len(q.x) and q.allowed.any()]
    model = fit(np.vstack(xs), np.concatenate(ys).astype(float), l2=l2)
    model.threshold = best_threshold(model, questions)
    return model


def cross_validate(questions: list[Question], folds: int = 5, seed: int = 7) -> dict[str, object]:
    """Grouped k-fold (a question is never in both the fit and the test): held-out figures only."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(questions))
    fold_of = {int(i): n % folds for n, i in enumerate(order)}
    rows = []
    for f in range(folds):
        train = [q for i, q in enumerate(questions) if fold_of[i] != f]
        test = [q for i, q in enumerate(questions) if fold_of[i] == f]
        model = fit_questions(train)
        for q in test:
            rows.append((q, decide(model, q, model.threshold), model.threshold))
    return summarize(rows)


def summarize(rows: list[tuple[Question, bool, float]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for corpus in sorted({q.corpus for q, _, _ in rows}) + ["all"]:
        sel = [(q, ok) for q, ok, _ in rows if corpus in ("all", q.corpus)]
        ans = [(q, ok) for q, ok in sel if q.answerable]
        una = [(q, ok) for q, ok in sel if not q.answerable]
        out[corpus] = {
            "questions": len(sel),
            "accuracy_answerable": round(sum(ok for _, ok in ans) / len(ans), 4) if ans else None,
            "refusal_recall": round(sum(ok for _, ok in una) / len(una), 4) if una else None,
            "overall": round(sum(ok for _, ok in sel) / len(sel), 4) if sel else None,
        }
    out["thresholds"] = sorted({round(t, 2) for _, _, t in rows})
    return out
