"""Train the scam classifier and write a verified, versioned artifact.

    python -m service.train --data ../shared/data/enron_spam_6subsets.csv.gz \
        --data ../shared/data/sms_spam_collection_5572.csv --out service/model

Reads CSV / CSV.gz files in either layout (`text,label[,subset]` as in Enron-Spam, or
`Category,Message` as in the SMS Spam Collection; labels 1/0 or spam/ham), normalises every text
with `service.text.normalize` (the function the service uses), removes duplicates *before* splitting,
splits train / validation / test with a fixed seed, fits TF-IDF + logistic regression, picks the
decision threshold on the validation split only, checks that the exported pure-Python scorer
reproduces scikit-learn's probabilities, and writes `model.json`, `metadata.json` and `MODEL_CARD.md`.

The evaluation set (`eval_nazario_phish_vs_spamassassin_easyham.csv.gz`) is refused as training data:
it exists only to measure generalisation. `--report-eval` scores it *after* the model is fixed, only
to put the figures in the metadata and model card.

Needs the `train` dependency group (scikit-learn, scipy, wordfreq); the service never imports this.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import functools
import gzip
import hashlib
import io
import json
import os
import pathlib
import random
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from service.classifier import MODEL_FORMAT, MODEL_NAME, ScamClassifier, _sha256, featurize
from service.text import PLACEHOLDERS, normalize

SEED = 20240601
MODEL_FILE = "model.json"
CARD_FILE = "MODEL_CARD.md"
# sha256 of the shared evaluation file; training on it would make every generalisation figure a lie.
EVAL_SET_SHA256 = "9803c305493c4373b22631da4977acfcd136c950a83a1ecb16f1a5e9f08bdf1d"
EVAL_ONLY_COLUMNS = {"near_dup_in_A", "maxA_shingle_overlap", "closest_A_file"}

_SPAM_LABELS = {"1", "spam", "scam", "phishing", "phish", "true", "yes"}
_HAM_LABELS = {"0", "ham", "legitimate", "legit", "false", "no"}


class DataError(ValueError):
    """A training/evaluation file cannot be used; the message says why and what to do."""


@dataclass
class Example:
    text: str  # raw text as read
    label: int  # 1 = scam/spam/phishing, 0 = legitimate
    source: str  # file stem, plus the subset column when present (e.g. "enron_spam_6subsets/enron3")
    row: dict[str, str] = field(repr=False, default_factory=dict)


def _open_text(path: pathlib.Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")  # type: ignore[return-value]
    return path.open("r", encoding="utf-8", newline="")


def _parse_label(value: str, path: pathlib.Path, line: int) -> int:
    v = value.strip().lower()
    if v in _SPAM_LABELS:
        return 1
    if v in _HAM_LABELS:
        return 0
    raise DataError(f"{path}:{line}: label {value!r} is neither spam (1/spam) nor legitimate (0/ham)")


def _pick_columns(fieldnames: Sequence[str], path: pathlib.Path) -> tuple[str, str]:
    lower = {name.strip().lower(): name for name in fieldnames}
    text_col = next((lower[c] for c in ("text", "message", "body", "email") if c in lower), None)
    label_col = next((lower[c] for c in ("label", "category", "class", "is_spam") if c in lower), None)
    if text_col is None or label_col is None:
        raise DataError(
            f"{path}: cannot find the text and label columns in {list(fieldnames)}; "
            "expected text,label (Enron layout) or Category,Message (SMS layout)"
        )
    return text_col, label_col


def file_sha256(path: pathlib.Path) -> str:
    return _sha256(path)


def read_examples(path: pathlib.Path, *, for_training: bool) -> list[Example]:
    """Read one labelled CSV (.csv or .csv.gz)."""
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    if for_training and file_sha256(path) == EVAL_SET_SHA256:
        raise DataError(
            f"{path} is the evaluation set; it measures generalisation and must not be trained on"
        )
    csv.field_size_limit(10**9)
    stem = path.name.removesuffix(".gz").removesuffix(".csv")
    examples: list[Example] = []
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            raise DataError(f"{path} is empty")
        if for_training and EVAL_ONLY_COLUMNS & set(reader.fieldnames):
            raise DataError(
                f"{path} has the evaluation set's columns {sorted(EVAL_ONLY_COLUMNS)}; "
                "refusing to train on the evaluation set"
            )
        text_col, label_col = _pick_columns(reader.fieldnames, path)
        for line, row in enumerate(reader, start=2):
            text = row.get(text_col) or ""
            label = _parse_label(row.get(label_col) or "", path, line)
            source = f"{stem}/{row['subset']}" if row.get("subset") else stem
            examples.append(Example(text=text, label=label, source=source, row=row))
    if not examples:
        raise DataError(f"{path} holds no rows")
    return examples


# --------------------------------------------------------------------------------------------------
# Training configuration


@dataclass(frozen=True)
class TrainConfig:
    ngram_max: int = 1
    sublinear_tf: bool = False  # False = binary term presence
    min_df: int = 3
    max_df: float = 0.5
    # Keep only tokens that carry across domains: a general English word list (wordfreq) plus
    # punctuation and placeholders. Removes Enron names, jargon and spam-trap gibberish.
    vocab_filter: str = "wordfreq"
    wordfreq_top_n: int = 30000
    # Drop terms whose document frequency differs by more than this factor between email sources
    # (Enron mailboxes) inside the same class: mailbox-specific shortcuts. 0 = off.
    c: float = 1.0
    class_weight: str | None = "balanced"
    prune_abs_weight: float = 0.0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = SEED


def _allowed_tokens(config: TrainConfig) -> set[str] | None:
    if config.vocab_filter == "none":
        return None
    if config.vocab_filter != "wordfreq":
        raise ValueError(f"unknown vocab_filter {config.vocab_filter!r}")
    from wordfreq import top_n_list

    words = {w for w in top_n_list("en", config.wordfreq_top_n) if w.isascii()}
    # wordfreq tokens can hold apostrophes/punctuation; keep their alphanumeric pieces.
    allowed: set[str] = set()
    for word in words:
        allowed.update(normalize(word).split())
    allowed.update(PLACEHOLDERS)
    return allowed


def _is_allowed(term: str, allowed: set[str] | None) -> bool:
    if allowed is None:
        return True
    return all(tok in allowed or not tok.isalnum() for tok in term.split(" "))


def dedupe(examples: Iterable[Example]) -> tuple[list[str], list[int], list[str], dict[str, int]]:
    """Normalise and drop duplicate texts (and texts labelled both ways) before any split."""
    seen: dict[str, int] = {}
    first: dict[str, tuple[int, str]] = {}
    conflicting: set[str] = set()
    total = 0
    for ex in examples:
        total += 1
        norm = normalize(ex.text)
        if not norm:
            continue
        if norm in first:
            if first[norm][0] != ex.label:
                conflicting.add(norm)
            seen[norm] += 1
            continue
        first[norm] = (ex.label, ex.source)
        seen[norm] = 1
    texts = [t for t in first if t not in conflicting]
    labels = [first[t][0] for t in texts]
    sources = [first[t][1] for t in texts]
    stats = {"rows": total, "distinct": len(first), "conflicting_labels_dropped": len(conflicting)}
    return texts, labels, sources, stats


def split_indices(
    labels: Sequence[int], sources: Sequence[str], config: TrainConfig
) -> tuple[list[int], list[int], list[int]]:
    """Stratified (source x label) random split into train / validation / test, fixed seed."""
    rng = random.Random(config.seed)  # noqa: S311 - reproducible split, not crypto
    strata: dict[tuple[str, int], list[int]] = {}
    for i, (label, source) in enumerate(zip(labels, sources, strict=True)):
        strata.setdefault((source, label), []).append(i)
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for key in sorted(strata):
        idx = strata[key]
        rng.shuffle(idx)
        n_test = round(len(idx) * config.test_fraction)
        n_val = round(len(idx) * config.val_fraction)
        test += idx[:n_test]
        val += idx[n_test : n_test + n_val]
        train += idx[n_test + n_val :]
    return sorted(train), sorted(val), sorted(test)


# --------------------------------------------------------------------------------------------------
# Metrics


def binary_metrics(
    y_true: Sequence[int], scores: Sequence[float] | np.ndarray, threshold: float
) -> dict[str, Any]:
    from sklearn.metrics import brier_score_loss, roc_auc_score

    y = np.asarray(y_true, dtype=int)
    s = np.asarray(scores, dtype=float)
    pred = s >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    both = len(set(y.tolist())) == 2
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "roc_auc": round(float(roc_auc_score(y, s)), 4) if both else None,
        "brier": round(float(brier_score_loss(y, s)), 4),
        "support": len(y),
        "support_scam": int(y.sum()),
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": len(y) - tp - fp - fn},
        "threshold": round(threshold, 6),
    }


def best_f1_threshold(y_true: Sequence[int], scores: Sequence[float] | np.ndarray) -> float:
    """Threshold maximising F1 (ties: the one in the middle of the widest plateau is not needed here;
    the highest-precision one, i.e. the largest threshold reaching the best F1, is used)."""
    y = np.asarray(y_true, dtype=int)
    s = np.asarray(scores, dtype=float)
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    y_sorted = y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(1 - y_sorted)
    positives = y.sum()
    f1 = 2 * tp / (tp + fp + positives)
    # only cut between distinct scores
    last_of_run = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    f1 = np.where(last_of_run, f1, -1.0)
    best = int(np.argmax(f1))
    # place the threshold halfway to the next lower score, so near-ties do not flip
    upper = s_sorted[best]
    lower = s_sorted[best + 1] if best + 1 < len(s_sorted) else upper
    return float((upper + lower) / 2) if lower < upper else float(upper)


# --------------------------------------------------------------------------------------------------
# Fit + export


@dataclass
class Fitted:
    terms: list[str]
    idf: np.ndarray
    weights: np.ndarray
    bias: float
    config: TrainConfig
    sk_vectorizer: Any
    sk_model: Any

    def sk_scores(self, normalized_texts: Sequence[str]) -> np.ndarray:
        x = self.sk_vectorizer.transform(normalized_texts)
        return self.sk_model.predict_proba(x)[:, 1]


def _identity(x: str) -> str:
    return x


def fit(texts: Sequence[str], labels: Sequence[int], config: TrainConfig) -> Fitted:
    """Fit TF-IDF + logistic regression on *normalised* texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    analyzer: Any = functools.partial(featurize, ngram_max=config.ngram_max)
    counter = TfidfVectorizer(
        analyzer=analyzer,
        min_df=config.min_df,
        max_df=config.max_df,
        binary=not config.sublinear_tf,
        sublinear_tf=config.sublinear_tf,
        norm="l2",
        dtype=np.float64,
    )
    counter.fit(texts)
    allowed = _allowed_tokens(config)
    vocab = sorted(t for t in counter.vocabulary_ if _is_allowed(t, allowed))
    vectorizer = TfidfVectorizer(
        analyzer=analyzer,
        vocabulary=vocab,
        binary=not config.sublinear_tf,
        sublinear_tf=config.sublinear_tf,
        norm="l2",
        dtype=np.float64,
    )
    x = vectorizer.fit_transform(texts)
    model: Any = LogisticRegression(
        C=config.c,
        class_weight=config.class_weight,
        solver="liblinear",
        max_iter=1000,
        random_state=config.seed,
    )
    model.fit(x, np.asarray(labels))
    weights = model.coef_[0].astype(np.float64)
    if config.prune_abs_weight > 0:
        weights = np.where(np.abs(weights) >= config.prune_abs_weight, weights, 0.0)
        model.coef_[0] = weights
    return Fitted(
        terms=list(vocab),
        idf=vectorizer.idf_.astype(np.float64),
        weights=weights,
        bias=float(model.intercept_[0]),
        config=config,
        sk_vectorizer=vectorizer,
        sk_model=model,
    )


def export_model(fitted: Fitted) -> dict[str, Any]:
    """The serving table: only terms with a non-zero weight matter for the score, but every term
    contributes to the l2 norm, so all of the vocabulary is kept (idf); zero weights are exported."""
    return {
        "format": MODEL_FORMAT,
        "features": {
            "ngram_max": fitted.config.ngram_max,
            "sublinear_tf": fitted.config.sublinear_tf,
            "norm": "l2",
            "normalizer": "service.text.normalize",
        },
        "bias": fitted.bias,
        "terms": fitted.terms,
        "idf": [float(v) for v in fitted.idf],
        "weights": [float(v) for v in fitted.weights],
    }


def data_fingerprint(paths: Sequence[pathlib.Path], stats: dict[str, int]) -> dict[str, Any]:
    files = [{"name": p.name, "sha256": file_sha256(p), "bytes": p.stat().st_size} for p in paths]
    combined = hashlib.sha256("\n".join(f"{f['name']}:{f['sha256']}" for f in files).encode()).hexdigest()
    return {"sha256": combined, "files": files, **stats}


def _created_at() -> str:
    # SOURCE_DATE_EPOCH makes the artifact byte-for-byte reproducible (reproducible-builds.org).
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def write_artifact(
    out: pathlib.Path,
    model: dict[str, Any],
    metadata: dict[str, Any],
) -> ScamClassifier:
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_FILE).write_text(json.dumps(model, separators=(",", ":")) + "\n", encoding="utf-8")
    from service.evaluate import render_model_card

    (out / CARD_FILE).write_text(render_model_card(metadata), encoding="utf-8")
    metadata["files"] = {name: _sha256(out / name) for name in (MODEL_FILE, CARD_FILE)}
    (out / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return ScamClassifier.load(out)


def check_serving_matches(clf: ScamClassifier, fitted: Fitted, normalized: Sequence[str]) -> float:
    """Max |p_serving - p_sklearn| on the given texts; raise if it is not ~0."""
    sk = fitted.sk_scores(normalized)
    ours = np.asarray([clf.score(t) for t in normalized])
    diff = float(np.max(np.abs(sk - ours))) if len(sk) else 0.0
    if diff > 1e-6:
        raise RuntimeError(f"serving scorer differs from scikit-learn by {diff}; export is broken")
    return diff


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service.train", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--data", action="append", required=True, type=pathlib.Path, help="CSV or CSV.gz")
    parser.add_argument("--out", required=True, type=pathlib.Path, help="artifact directory to write")
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--report-eval", type=pathlib.Path, help="evaluation CSV scored after training")
    parser.add_argument("--sample", type=int, default=0, help="train on N random rows (smoke test)")
    parser.add_argument("--c", type=float, default=TrainConfig.c)
    parser.add_argument("--min-df", type=int, default=TrainConfig.min_df)
    parser.add_argument("--ngram-max", type=int, default=TrainConfig.ngram_max)
    parser.add_argument("--vocab-filter", choices=["wordfreq", "none"], default=TrainConfig.vocab_filter)
    args = parser.parse_args(argv)
    config = TrainConfig(
        c=args.c, min_df=args.min_df, ngram_max=args.ngram_max, vocab_filter=args.vocab_filter
    )

    started = time.perf_counter()
    examples: list[Example] = []
    try:
        for path in args.data:
            examples += read_examples(path, for_training=True)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.sample:
        random.Random(config.seed).shuffle(examples)  # noqa: S311 - reproducible sample
        examples = examples[: args.sample]
    texts, labels, sources, stats = dedupe(examples)
    train_idx, val_idx, test_idx = split_indices(labels, sources, config)
    pick = lambda idx, seq: [seq[i] for i in idx]  # noqa: E731
    fitted = fit(pick(train_idx, texts), pick(train_idx, labels), config)
    val_scores = fitted.sk_scores(pick(val_idx, texts))
    threshold = best_f1_threshold(pick(val_idx, labels), val_scores)
    test_scores = fitted.sk_scores(pick(test_idx, texts))
    metrics: dict[str, Any] = {
        "validation": binary_metrics(pick(val_idx, labels), val_scores, threshold),
        "heldout_test": binary_metrics(pick(test_idx, labels), test_scores, threshold),
    }
    metadata: dict[str, Any] = {
        "name": MODEL_NAME,
        "version": args.version,
        "created_at": _created_at(),
        "threshold": threshold,
        "model_file": MODEL_FILE,
        "training_data": data_fingerprint(args.data, stats),
        "splits": {"train": len(train_idx), "validation": len(val_idx), "heldout_test": len(test_idx)},
        "config": asdict(config),
        "vocabulary_size": len(fitted.terms),
        "metrics": metrics,
    }
    model = export_model(fitted)
    clf = write_artifact(args.out, model, metadata)
    check_serving_matches(clf, fitted, pick(val_idx, texts)[:500])
    if args.report_eval:
        # Scored only after the model and threshold are fixed: reported, never used to choose.
        from service.evaluate import evaluate_examples, load_eval_examples

        metrics["evaluation_set"] = {
            "file": args.report_eval.name,
            "sha256": file_sha256(args.report_eval),
            "filter": "near_dup_in_A == 0",
            **evaluate_examples(clf, load_eval_examples(args.report_eval)),
        }
        write_artifact(args.out, model, metadata)
    print(f"trained in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    print(json.dumps({"out": str(args.out), "threshold": threshold, **metrics}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
