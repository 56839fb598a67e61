"""Train the scam classifier and write a verified, versioned artifact.

    python -m training.train --data ../shared/data/enron_spam_6subsets.csv.gz \
        --data ../shared/data/sms_spam_collection_5572.csv --out runtime/model

Reads CSV / CSV.gz files in either layout (`text,label[,subset]` as in Enron-Spam, or
`Category,Message` as in the SMS Spam Collection; labels 1/0 or spam/ham), normalises every text
with `runtime.text.normalize` (the function the service uses), removes duplicates *before* splitting,
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from runtime.classifier import (
    IDF_SCALE,
    MODEL_FORMAT,
    MODEL_NAME,
    ScamClassifier,
    _sha256,
    build_tables,
    featurize,
)
from runtime.text import PLACEHOLDERS, URL_TOKEN, normalize

SEED = 20240601

# Tokens that say which corpus or layout a mail comes from rather than whether it is a scam
# (the shared data's README warns about names, dates and list footers). Grouped so the ablation
# can switch each group on and off.
SHORTCUT_GROUPS: dict[str, tuple[str, ...]] = {
    # the company, its hosts and people of the six Enron mailboxes
    "enron": (
        "enron",
        "ect",
        "hou",
        "ena",
        "hpl",
        "corp",
        "vince",
        "kaminski",
        "louise",
        "kitchen",
        "daren",
        "farmer",
        "sally",
        "beck",
        "michelle",
        "lokay",
        "houston",
        "shirley",
        "crenshaw",
    ),
    # dates: Enron ham carries forwarded-header dates, the spam traps other years
    "dates": (
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "mon",
        "tue",
        "tues",
        "wed",
        "thu",
        "thur",
        "thurs",
        "fri",
        "sat",
        "sun",
        "am",
        "pm",
    ),
    # list and newsletter footers: legitimate bulk mail carries them just like spam
    "footers": (
        "unsubscribe",
        "subscribe",
        "subscribed",
        "subscription",
        "subscriber",
        "subscribers",
        "mailing",
        "list",
        "lists",
        "remove",
        "removed",
        "removal",
        "opt",
        "sponsored",
        "sponsor",
        "email",
        "e",
        "mail",
        "newsletter",
        "spam",
        "listinfo",
        "mailman",
    ),
    # what is left of links and addresses once they are tokenised
    "url_debris": ("com", "net", "org", "html", "htm", "www", "http", "https", "php", "asp", "cgi", "sf"),
    # the "Subject:" line every e-mail (but no SMS and no background text) starts with
    "layout": ("subject", "fw", "fwd"),
    # single letters: obfuscation ("v i a g r a") and tokenisation debris, not words
    "letters": tuple("bcdefghjklmnopqrstuvwxyz"),
}
MODEL_FILE = "model.json"
VOCAB_FILE = "vocab.txt"
ARRAYS_FILE = "weights.npz"
CARD_FILE = "MODEL_CARD.md"
MODEL_VERSION = "2.0.0"
# The plain-mail suite: ordinary short mail that must pass, and scams without a link that must not.
SUITE_FILE = pathlib.Path(__file__).resolve().parent / "suites" / "plain_mail.csv"
DATE_COLUMN = "date"
LANGUAGE_COLUMN = "lang_guess"
MIN_LANGUAGE_ROWS = 50
# Held-out rows reported by source on their own (key in metrics -> source prefix).
HELDOUT_SOURCES = {
    "heldout_test_enron": "enron_spam_6subsets/",
    "heldout_test_modern": "phishing_pot_2022_2024",
}
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
    ngram_max: int = 2  # word unigrams + bigrams
    sublinear_tf: bool = True  # 1 + log(tf); False = binary term presence
    min_df: int = 2
    max_df: float = 0.5
    # Keep only words that carry across domains: a general English word list (wordfreq top N).
    # Removes Enron names/jargon, spam-trap gibberish and the long tail a model overfits on.
    vocab_filter: str = "wordfreq"
    wordfreq_top_n: int = 30000
    # Languages whose wordfreq top-N words the vocabulary may use (accents folded as `normalize`
    # folds them). English only was the 1.x model: every Portuguese or German word was unknown.
    vocab_languages: tuple[str, ...] = ("en", "pt", "de", "es", "fr")
    # Punctuation tokens mostly encode layout ("[list] subject", "____ footer", "= = =" rules).
    punctuation: bool = False
    # Placeholder tokens to keep as features (urltoken, emailtoken, moneytoken, phonetoken, numtoken).
    # Links are everywhere in legitimate newsletters and lists, rare in Enron ham: url/email
    # placeholders would teach "has a link = scam".
    placeholders: tuple[str, ...] = ("moneytoken", "phonetoken", "numtoken")
    # Shortcut token groups removed from the vocabulary (see SHORTCUT_GROUPS), plus extra words.
    shortcut_groups: tuple[str, ...] = tuple(SHORTCUT_GROUPS)
    blocklist: tuple[str, ...] = ()
    # Drop terms whose document rate in one source (mailbox) is > this factor above their rate in
    # the others, within the same class: mailbox-specific shortcuts. 0 = off.
    source_max_ratio: float = 0.0
    # Synthetic "general English" legitimate documents: bags of words drawn from wordfreq's English
    # frequencies. Enron ham covers one company's business topics; without a background every
    # off-topic word (news, tech, politics) only ever appeared in spam. 0 = off.
    background_docs: int = 20000
    background_doc_words: int = 200
    background_top_n: int = 30000  # words drawn from wordfreq's N most frequent words of a language
    # Background documents in further languages (each `background_docs_per_language` of them): the
    # only non-English mail in the training data is phishing, so without a legitimate background
    # "written in Portuguese" alone would read as scam.
    background_languages: tuple[str, ...] = ()
    background_docs_per_language: int = 5000
    c: float = 3.0
    # Decision threshold: the lowest score whose false-positive rate on the validation split's
    # legitimate mail is <= this (the usual way to run a spam filter: wrongly binned legitimate mail
    # costs far more than a missed scam). 0 = the threshold maximising validation F1 instead.
    threshold_max_fpr: float = 0.01
    # Compression (see scripts/model_compression.py): keep the `prune_to` terms with the largest
    # |weight| and refit on them (0 = keep all); store weights as `weight_bits`-bit integers with one
    # scale (0 = full float64) and idf rounded to 4 decimals. The sklearn model is given the same
    # rounded numbers, so serving and sklearn stay identical.
    # 2.0 keeps every term: pruned to 150k the five-language vocabulary lost 0.05 of evaluation-set
    # precision (0.913 -> 0.866), for 8 MB saved.
    prune_to: int = 0
    weight_bits: int = 16
    class_weight: str | None = "balanced"
    # Extra weight on the rows of some sources, as (source prefix, weight) pairs: the modern phishing
    # file is an eighth of the training mail but the kind of mail the model must catch today.
    source_weights: tuple[tuple[str, float], ...] = (("phishing_pot_2022_2024", 3.0),)
    # Rows with a `date` after this day are the time-split test set, never trained on ("" = none).
    time_split_after: str = "2023-12-31"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = SEED


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Rebuild the TrainConfig recorded in an artifact's metadata.json ("config")."""
    known = {f for f in TrainConfig.__dataclass_fields__}
    kwargs: dict[str, Any] = {
        k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
        for k, v in values.items()
        if k in known
    }
    return TrainConfig(**kwargs)


def allowed_tokens(config: TrainConfig) -> set[str] | None:
    """Alphanumeric tokens the vocabulary may use (None = any)."""
    if config.vocab_filter == "none":
        return None
    if config.vocab_filter != "wordfreq":
        raise ValueError(f"unknown vocab_filter {config.vocab_filter!r}")
    from wordfreq import top_n_list

    # wordfreq entries can hold apostrophes/punctuation; keep their alphanumeric pieces.
    allowed: set[str] = set()
    for language in config.vocab_languages:
        for word in top_n_list(language, config.wordfreq_top_n):
            if language != "en" or word.isascii():
                allowed.update(tok for tok in normalize(word).split() if tok.isalnum())
    return allowed


def background_texts(config: TrainConfig) -> list[str]:
    """Seeded pseudo-documents of general language (label: legitimate), normalised."""
    texts: list[str] = []
    if config.background_docs > 0:
        texts += _background_language("en", config.background_docs, config, config.seed)
    for k, language in enumerate(config.background_languages):
        texts += _background_language(
            language, config.background_docs_per_language, config, config.seed + k + 1
        )
    return texts


def _background_language(language: str, docs: int, config: TrainConfig, seed: int) -> list[str]:
    from wordfreq import top_n_list, word_frequency

    words = [w for w in top_n_list(language, config.background_top_n) if language != "en" or w.isascii()]
    freq = np.asarray([word_frequency(w, language) for w in words], dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.choice(len(words), size=(docs, config.background_doc_words), p=freq / freq.sum())
    return [normalize(" ".join(words[i] for i in row)) for row in draws]


def term_filter(config: TrainConfig) -> Callable[[str], bool]:
    allowed = allowed_tokens(config)
    placeholders = set(config.placeholders)
    blocked = set(config.blocklist) | (set(PLACEHOLDERS) - placeholders)
    for group in config.shortcut_groups:
        blocked.update(SHORTCUT_GROUPS[group])

    def keep_token(tok: str) -> bool:
        if tok in blocked:
            return False
        if tok in placeholders:
            return True
        if not tok.isalnum():
            return config.punctuation
        return allowed is None or tok in allowed

    return lambda term: all(keep_token(tok) for tok in term.split(" "))


def source_specific_terms(
    x_binary: Any, terms: Sequence[str], labels: Sequence[int], sources: Sequence[str], max_ratio: float
) -> set[str]:
    """Terms far more frequent in one source than in the other sources of the same class."""
    y = np.asarray(labels)
    src = np.asarray(sources)
    flagged = np.zeros(len(terms), dtype=bool)
    for label in (0, 1):
        names = [s for s in sorted(set(src[y == label].tolist())) if np.sum((src == s) & (y == label)) >= 200]
        if len(names) < 3:
            continue
        rates = []
        for name in names:
            rows = np.flatnonzero((src == name) & (y == label))
            rates.append(np.asarray(x_binary[rows].sum(axis=0)).ravel() / len(rows))
        r = np.vstack(rates)
        total = r.sum(axis=0)
        for i in range(len(names)):
            others = (total - r[i]) / (len(names) - 1)
            flagged |= r[i] > max_ratio * others + 0.002
    return {terms[int(i)] for i in np.flatnonzero(flagged)}


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


def max_fpr_threshold(y_true: Sequence[int], scores: Sequence[float] | np.ndarray, max_fpr: float) -> float:
    """Lowest threshold at which at most `max_fpr` of the legitimate examples score >= it."""
    y = np.asarray(y_true, dtype=int)
    ham = np.sort(np.asarray(scores, dtype=float)[y == 0])[::-1]
    allowed = int(np.floor(max_fpr * len(ham)))  # false positives tolerated
    if allowed >= len(ham):
        return 0.0
    # just above the (allowed+1)-th highest legitimate score, so exactly `allowed` of them are flagged
    return float(np.nextafter(ham[allowed], np.inf))


def choose_threshold(
    y_true: Sequence[int], scores: Sequence[float] | np.ndarray, config: TrainConfig
) -> float:
    if config.threshold_max_fpr > 0:
        return max_fpr_threshold(y_true, scores, config.threshold_max_fpr)
    return best_f1_threshold(y_true, scores)


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


@dataclass(frozen=True)
class Calibration:
    """Maps the linear model's logit z to a probability: sigmoid(slope * z * n / (n + k) + intercept).

    n is the number of vocabulary terms found in the text. A linear model over l2-normalised TF-IDF
    gives a one-word text that word's whole weight ("hello" scored 0.99 in 1.x), so the logit is
    shrunk towards the intercept while there is little evidence (k = `evidence_k` terms halve it).
    Fitted on the validation split by log-loss; slope 1, intercept 0, k 0 is the identity.
    """

    slope: float = 1.0
    intercept: float = 0.0
    evidence_k: float = 0.0

    def logit(self, z: np.ndarray, n: np.ndarray) -> np.ndarray:
        shrink = n / (n + self.evidence_k) if self.evidence_k > 0 else np.ones_like(z)
        return self.slope * z * shrink + self.intercept


@dataclass
class Fitted:
    terms: list[str]
    idf: np.ndarray
    weights: np.ndarray
    bias: float
    config: TrainConfig
    sk_vectorizer: Any
    sk_model: Any
    weight_scale: float = 1.0
    quantised: np.ndarray | None = None
    weight_bits: int = 0
    calibration: Calibration = field(default_factory=Calibration)

    def sk_raw(self, normalized_texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """scikit-learn's logit per text, and the number of vocabulary terms in it."""
        x = self.sk_vectorizer.transform(normalized_texts)
        z = self.sk_model.decision_function(x)
        from sklearn.feature_extraction.text import CountVectorizer

        counter = CountVectorizer(
            analyzer=self.sk_vectorizer.analyzer, vocabulary=self.sk_vectorizer.vocabulary_
        )
        n = np.asarray(counter.transform(normalized_texts).sum(axis=1), dtype=np.float64).ravel()
        return np.asarray(z, dtype=np.float64), n

    def sk_scores(self, normalized_texts: Sequence[str]) -> np.ndarray:
        z, n = self.sk_raw(normalized_texts)
        return _expit(self.calibration.logit(z, n))


def _expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def fit_calibration(fitted: Fitted, texts: Sequence[str], labels: Sequence[int]) -> Calibration:
    """Slope, intercept and evidence constant minimising log-loss on (validation) texts."""
    from scipy.optimize import minimize

    z, n = fitted.sk_raw(texts)
    y = np.asarray(labels, dtype=np.float64)

    def loss(params: np.ndarray) -> float:
        cal = Calibration(float(params[0]), float(params[1]), float(np.exp(params[2])))
        logit = cal.logit(z, n)
        # log(1 + e^-|x|) form of the log-loss: stable for large logits
        return float(np.mean(np.logaddexp(0.0, logit) - y * logit))

    result = minimize(
        loss,
        np.asarray([1.0, 0.0, 0.0]),
        method="Nelder-Mead",
        options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000},
    )
    slope, intercept, log_k = (float(v) for v in result.x)
    # rounded so that the artifact and this reference use the very same numbers
    return Calibration(round(slope, 6), round(intercept, 6), round(float(np.exp(log_k)), 4))


def _identity(x: str) -> str:
    return x


def fit(
    texts: Sequence[str],
    labels: Sequence[int],
    config: TrainConfig,
    sources: Sequence[str] | None = None,
) -> Fitted:
    """Fit TF-IDF + logistic regression on *normalised* texts, then prune and quantise."""
    from sklearn.feature_extraction.text import CountVectorizer

    analyzer: Any = functools.partial(featurize, ngram_max=config.ngram_max)
    counter = CountVectorizer(analyzer=analyzer, min_df=config.min_df, max_df=config.max_df, binary=True)
    x_counts = counter.fit_transform(texts)
    keep = term_filter(config)
    candidates = counter.get_feature_names_out().tolist()
    vocab = {t for t in candidates if keep(t)}
    if config.source_max_ratio > 0 and sources is not None:
        vocab -= source_specific_terms(x_counts, candidates, labels, sources, config.source_max_ratio)
    del x_counts
    weights = sample_weights(config, sources) if sources is not None else None
    fitted = _fit_vocabulary(texts, labels, config, sorted(vocab), analyzer, weights)
    if 0 < config.prune_to < len(fitted.terms):
        strongest = np.argsort(-np.abs(fitted.weights), kind="stable")[: config.prune_to]
        vocab_pruned = sorted(fitted.terms[i] for i in strongest)
        fitted = _fit_vocabulary(texts, labels, config, vocab_pruned, analyzer, weights)
    return _quantise(fitted, config.weight_bits)


def sample_weights(config: TrainConfig, sources: Sequence[str]) -> np.ndarray | None:
    """Per-row weights from `config.source_weights` (None when every row weighs 1)."""
    if not config.source_weights:
        return None
    weights = np.ones(len(sources), dtype=np.float64)
    for i, source in enumerate(sources):
        for prefix, weight in config.source_weights:
            if source.startswith(prefix):
                weights[i] = weight
    return weights


def _fit_vocabulary(
    texts: Sequence[str],
    labels: Sequence[int],
    config: TrainConfig,
    vocab: list[str],
    analyzer: Any,
    weights: np.ndarray | None = None,
) -> Fitted:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

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
    model.fit(x, np.asarray(labels), sample_weight=weights)
    return Fitted(
        terms=list(vocab),
        idf=vectorizer.idf_.astype(np.float64),
        weights=model.coef_[0].astype(np.float64),
        bias=float(model.intercept_[0]),
        config=config,
        sk_vectorizer=vectorizer,
        sk_model=model,
    )


def _quantise(fitted: Fitted, weight_bits: int) -> Fitted:
    """Round idf to 4 decimals and weights to `weight_bits`-bit integers times one scale, and give
    the sklearn objects the same numbers, so the reference model *is* the exported one."""
    fitted.idf = np.round(fitted.idf, 4)
    fitted.sk_vectorizer.idf_ = fitted.idf
    fitted.weight_scale = 1.0
    if weight_bits:
        levels = 2 ** (weight_bits - 1) - 1
        scale = float(np.max(np.abs(fitted.weights))) / levels or 1.0
        fitted.quantised = np.round(fitted.weights / scale).astype(np.int64)
        fitted.weight_bits = weight_bits
        fitted.weight_scale = scale
        fitted.weights = fitted.quantised * scale
        fitted.sk_model.coef_[0] = fitted.weights
    return fitted


@dataclass
class ExportedModel:
    header: dict[str, Any]  # model.json
    words: list[str]  # vocab.txt
    arrays: dict[str, np.ndarray]  # weights.npz


def export_model(fitted: Fitted) -> ExportedModel:
    """The serving artifact's model files for `fitted` (columns in the sklearn vectorizer's order)."""
    tables = build_tables(fitted.terms)
    if fitted.quantised is not None:
        bits = fitted.weight_bits
        weights = fitted.quantised.astype(np.int8 if bits <= 8 else np.int16 if bits <= 16 else np.int32)
        if not np.array_equal(weights, fitted.quantised):
            raise RuntimeError(f"quantised weights do not fit in {weights.dtype}")
    else:
        weights = fitted.weights.astype(np.float64)
    idf_e4 = np.round(fitted.idf * IDF_SCALE).astype(np.int32)
    if not np.array_equal(idf_e4 / IDF_SCALE, fitted.idf):
        raise RuntimeError("idf must be rounded to 4 decimals before export (see _quantise)")
    header = {
        "format": MODEL_FORMAT,
        "features": {
            "ngram_max": fitted.config.ngram_max,
            "sublinear_tf": fitted.config.sublinear_tf,
            "norm": "l2",
            "normalizer": "runtime.text.normalize",
        },
        "bias": fitted.bias,
        "calibration": asdict(fitted.calibration),
        "weight_scale": fitted.weight_scale,
        "n_terms": len(fitted.terms),
        "n_words": len(tables["words"]),
        "vocab_file": VOCAB_FILE,
        "arrays_file": ARRAYS_FILE,
    }
    arrays = {
        "unigram_column": tables["unigram_column"],
        "bigram_keys": tables["bigram_keys"],
        "bigram_columns": tables["bigram_columns"],
        "idf_e4": idf_e4,
        "weights": weights,
    }
    return ExportedModel(header=header, words=tables["words"], arrays=arrays)


def data_fingerprint(paths: Sequence[pathlib.Path], stats: dict[str, int]) -> dict[str, Any]:
    files = [{"name": p.name, "sha256": file_sha256(p), "bytes": p.stat().st_size} for p in paths]
    combined = hashlib.sha256("\n".join(f"{f['name']}:{f['sha256']}" for f in files).encode()).hexdigest()
    return {"sha256": combined, "files": files, **stats}


def _created_at() -> str:
    # SOURCE_DATE_EPOCH makes the artifact byte-for-byte reproducible (reproducible-builds.org).
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def write_artifact(out: pathlib.Path, model: ExportedModel, metadata: dict[str, Any]) -> ScamClassifier:
    """Write the artifact files, the model card and metadata.json (with every file's sha256); load it."""
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_FILE).write_text(json.dumps(model.header, indent=1) + "\n", encoding="utf-8")
    (out / VOCAB_FILE).write_text("\n".join(model.words), encoding="utf-8")
    np.savez(out / ARRAYS_FILE, allow_pickle=False, **model.arrays)
    from training.model_card import render_model_card

    (out / CARD_FILE).write_text(render_model_card(metadata), encoding="utf-8")
    names = (MODEL_FILE, VOCAB_FILE, ARRAYS_FILE, CARD_FILE)
    metadata["files"] = {name: _sha256(out / name) for name in names}
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


# --------------------------------------------------------------------------- evaluation
# (here, not in training/evaluate.py, so that `train --report-eval` and the evaluate command share
# them without the two modules importing each other)


def load_eval_examples(path: pathlib.Path, *, all_rows: bool = False) -> list[Example]:
    """Read an evaluation CSV; drop near-duplicates of the training corpus unless `all_rows`."""
    examples = read_examples(path, for_training=False)
    if not all_rows and examples and "near_dup_in_A" in examples[0].row:
        examples = [ex for ex in examples if ex.row.get("near_dup_in_A", "0").strip() in ("0", "")]
    return examples


def evaluate_examples(clf: ScamClassifier, examples: Sequence[Example]) -> dict[str, Any]:
    scores = clf.score_many([ex.text for ex in examples])
    return binary_metrics([ex.label for ex in examples], scores, clf.info.threshold)


def time_split(examples: Sequence[Example], after: str) -> tuple[list[Example], list[Example]]:
    """(rows dated on or before `after` or undated, rows dated after it): the later rows are the
    time-split test set, the stand-in for mail newer than anything trained on (never trained on)."""
    if not after:
        return list(examples), []
    earlier: list[Example] = []
    later: list[Example] = []
    for ex in examples:
        date = (ex.row.get(DATE_COLUMN) or "").strip()
        (later if date and date[:10] > after else earlier).append(ex)
    return earlier, later


def by_language(
    clf: ScamClassifier, examples: Sequence[Example], min_rows: int = MIN_LANGUAGE_ROWS
) -> dict[str, Any]:
    """Metrics per `lang_guess` value (languages with fewer than `min_rows` rows pooled as "other")."""
    groups: dict[str, list[Example]] = {}
    for ex in examples:
        groups.setdefault((ex.row.get(LANGUAGE_COLUMN) or "unknown").strip() or "unknown", []).append(ex)
    pooled = [ex for name, rows in groups.items() if len(rows) < min_rows for ex in rows]
    result = {
        name: evaluate_examples(clf, rows) for name, rows in sorted(groups.items()) if len(rows) >= min_rows
    }
    if pooled:
        result["other"] = evaluate_examples(clf, pooled)
    return result


def without_links(examples: Sequence[Example]) -> list[Example]:
    """The rows with no link left after normalisation: real-world scams that rely on words alone."""
    return [ex for ex in examples if URL_TOKEN not in normalize(ex.text).split()]


def reliability_table(
    labels: Sequence[int], scores: Sequence[float] | np.ndarray, bins: int = 10
) -> list[dict[str, Any]]:
    """Equal-width score bins: how many texts, their mean score and the share that is scam."""
    y = np.asarray(labels, dtype=float)
    s = np.asarray(scores, dtype=float)
    index = np.minimum((s * bins).astype(int), bins - 1)
    table = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            table.append(
                {
                    "bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}",
                    "count": int(mask.sum()),
                    "mean_score": round(float(s[mask].mean()), 4),
                    "scam_rate": round(float(y[mask].mean()), 4),
                }
            )
    return table


def suite_report(clf: ScamClassifier, path: pathlib.Path = SUITE_FILE) -> dict[str, Any]:
    """The plain-mail suite: false-positive rate on ordinary mail, recall on link-less scams."""
    examples = read_examples(path, for_training=False)
    scores = clf.score_many([ex.text for ex in examples])
    benign = [(ex, s) for ex, s in zip(examples, scores, strict=True) if ex.label == 0]
    scams = [(ex, s) for ex, s in zip(examples, scores, strict=True) if ex.label == 1]
    flagged = [ex for ex, s in benign if clf.is_scam(s)]
    missed = [ex for ex, s in scams if not clf.is_scam(s)]
    return {
        "file": path.name,
        "benign": len(benign),
        "benign_false_positive_rate": round(len(flagged) / len(benign), 4),
        "scams": len(scams),
        "scam_recall": round(1 - len(missed) / len(scams), 4),
        "false_positives": [f"{ex.row.get('category')}: {ex.text[:60]!r}" for ex in flagged],
        "missed_scams": [f"{ex.row.get('category')}: {ex.text[:60]!r}" for ex in missed],
    }


@dataclass
class Trained:
    fitted: Fitted
    threshold: float
    train_idx: list[int]
    val_idx: list[int]
    test_idx: list[int]


def train_splits(
    texts: Sequence[str],
    labels: Sequence[int],
    sources: Sequence[str],
    config: TrainConfig,
    *,
    calibrate: bool = True,
) -> Trained:
    """Split de-duplicated texts, fit on the training split (+ background), then fit the calibration
    and pick the threshold on the validation split only."""
    train_idx, val_idx, test_idx = split_indices(labels, sources, config)
    pick = lambda idx, seq: [seq[i] for i in idx]  # noqa: E731
    background = background_texts(config)
    fitted = fit(
        pick(train_idx, texts) + background,
        pick(train_idx, labels) + [0] * len(background),
        config,
        pick(train_idx, sources) + ["background"] * len(background),
    )
    if calibrate:
        fitted.calibration = fit_calibration(fitted, pick(val_idx, texts), pick(val_idx, labels))
    threshold = choose_threshold(pick(val_idx, labels), fitted.sk_scores(pick(val_idx, texts)), config)
    return Trained(fitted, threshold, train_idx, val_idx, test_idx)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.train", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--data", action="append", required=True, type=pathlib.Path, help="CSV or CSV.gz")
    parser.add_argument("--out", required=True, type=pathlib.Path, help="artifact directory to write")
    parser.add_argument("--version", default=MODEL_VERSION)
    parser.add_argument("--report-eval", type=pathlib.Path, help="evaluation CSV scored after training")
    parser.add_argument("--sample", type=int, default=0, help="train on N random rows (smoke test)")
    parser.add_argument("--c", type=float, default=TrainConfig.c)
    parser.add_argument("--min-df", type=int, default=TrainConfig.min_df)
    parser.add_argument("--ngram-max", type=int, default=TrainConfig.ngram_max)
    parser.add_argument("--vocab-filter", choices=["wordfreq", "none"], default=TrainConfig.vocab_filter)
    parser.add_argument("--background-docs", type=int, default=TrainConfig.background_docs)
    parser.add_argument("--prune-to", type=int, default=TrainConfig.prune_to, help="0 = keep every term")
    parser.add_argument("--weight-bits", type=int, choices=[0, 8, 16], default=TrainConfig.weight_bits)
    parser.add_argument(
        "--time-split-after",
        default=TrainConfig.time_split_after,
        help="YYYY-MM-DD: rows with a later `date` are held out as the time-split test ('' = none)",
    )
    args = parser.parse_args(argv)
    config = replace(
        TrainConfig(),
        c=args.c,
        min_df=args.min_df,
        ngram_max=args.ngram_max,
        vocab_filter=args.vocab_filter,
        background_docs=args.background_docs,
        prune_to=args.prune_to,
        weight_bits=args.weight_bits,
        time_split_after=args.time_split_after,
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
    examples, later = time_split(examples, config.time_split_after)
    texts, labels, sources, stats = dedupe(examples)
    trained = train_splits(texts, labels, sources, config)
    fitted, threshold = trained.fitted, trained.threshold
    train_idx, val_idx, test_idx = trained.train_idx, trained.val_idx, trained.test_idx
    pick = lambda idx, seq: [seq[i] for i in idx]  # noqa: E731
    val_scores = fitted.sk_scores(pick(val_idx, texts))
    test_scores = fitted.sk_scores(pick(test_idx, texts))
    test_labels = pick(test_idx, labels)
    metrics: dict[str, Any] = {
        "validation": binary_metrics(pick(val_idx, labels), val_scores, threshold),
        "heldout_test": binary_metrics(test_labels, test_scores, threshold),
    }
    for key, prefix in HELDOUT_SOURCES.items():
        rows = [k for k, i in enumerate(test_idx) if sources[i].startswith(prefix)]
        if rows:
            metrics[key] = binary_metrics([test_labels[k] for k in rows], test_scores[rows], threshold)
    metrics["reliability_heldout_test"] = reliability_table(test_labels, test_scores)
    metadata: dict[str, Any] = {
        "name": MODEL_NAME,
        "version": args.version,
        "created_at": _created_at(),
        "threshold": threshold,
        "model_file": MODEL_FILE,
        "training_data": data_fingerprint(args.data, {**stats, "time_split_rows": len(later)}),
        "splits": {"train": len(train_idx), "validation": len(val_idx), "heldout_test": len(test_idx)},
        "config": asdict(config),
        "calibration": asdict(fitted.calibration),
        "vocabulary_size": len(fitted.terms),
        "metrics": metrics,
    }
    model = export_model(fitted)
    clf = write_artifact(args.out, model, metadata)
    check_serving_matches(clf, fitted, pick(val_idx, texts)[:500])
    # Scored only after the model and threshold are fixed: reported, never used to choose.
    if later:
        metrics["time_split"] = {
            "after": config.time_split_after,
            "all": evaluate_examples(clf, later),
            "by_language": by_language(clf, later),
            "without_links": evaluate_examples(clf, without_links(later)),
        }
    metrics["plain_mail"] = suite_report(clf)
    if args.report_eval:
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
