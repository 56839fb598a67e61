"""Serving-time scam classifier: a linear model over a precomputed vocabulary, numpy only.

The artifact (written by `python -m training.train`) is a directory with
- `metadata.json`: name, version, created_at, threshold, metrics, training-data fingerprint and the
  sha256 of every other file in the artifact (verified at load);
- `model.json`: format, feature settings, bias, weight scale and the names of the two files below;
- `vocab.txt`: the vocabulary's words, one per line (line number = word id);
- `weights.npz`: per term its idf (x 10^4, int32) and its weight (int16 x scale), plus the lookup
  tables unigram word id -> column and sorted bigram key (first_id * (n + 1) + second_id) -> column.

Scoring reproduces scikit-learn's `TfidfVectorizer(sublinear_tf=True, norm="l2")` over word 1-2-grams
followed by `LogisticRegression.predict_proba`, without scikit-learn: normalise the text, map tokens
to ids with one C-level dict pass, find unigram columns by indexing and bigram columns by binary
search, then two sums per text and a sigmoid. No per-token Python loop and no term strings are
built; a batch goes through those steps once, with each term keyed by its text. Where the compiled
`runtime._native` is built, its `Scorer` does those steps per text in C instead: the same operations
in the same order, so the same scores to the last bit (tests/runtime/test_native.py).
Loading is a JSON header, a word list and one uncompressed .npz (tens of milliseconds).
"""

from __future__ import annotations

import hashlib
import json
import math
import pathlib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any

import numpy as np

from runtime.native import native
from runtime.text import normalize, tokens

__all__ = ["DEFAULT_MODEL_DIR", "ModelInfo", "ModelLoadError", "ScamClassifier", "build_tables", "featurize"]

DEFAULT_MODEL_DIR = pathlib.Path(__file__).resolve().parent / "model"
METADATA_FILE = "metadata.json"
MODEL_NAME = "scam-classifier"
MODEL_FORMAT = "linear-tfidf/3"  # /3: calibration (slope, intercept, evidence_k)
IDF_SCALE = 10_000  # idf is stored as round(idf * 10^4): exactly the rounding training applies


class ModelLoadError(Exception):
    """The model artifact is missing, corrupt or does not match its checksums; str() says why."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    threshold: float
    created_at: str


def featurize(normalized: str, ngram_max: int) -> list[str]:
    """Feature terms of a normalised text: its tokens, plus word n-grams up to `ngram_max`.

    Training passes this function to scikit-learn as the analyzer, so both sides count the same terms.
    """
    toks = tokens(normalized)
    if ngram_max <= 1:
        return toks
    terms = list(toks)
    for n in range(2, ngram_max + 1):
        terms.extend(" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1))
    return terms


def build_tables(terms: Sequence[str]) -> dict[str, Any]:
    """Lookup tables for `terms` (column i = terms[i]): the word list and the id -> column arrays."""
    words: dict[str, int] = {}
    split_terms = [t.split(" ") for t in terms]
    for parts in split_terms:
        for word in parts:
            words.setdefault(word, len(words))
    unknown = len(words)  # the id every out-of-vocabulary token gets
    unigram_column = np.full(unknown + 1, -1, dtype=np.int32)
    keys: list[int] = []
    key_columns: list[int] = []
    for column, parts in enumerate(split_terms):
        if len(parts) == 1:
            unigram_column[words[parts[0]]] = column
        elif len(parts) == 2:
            keys.append(words[parts[0]] * (unknown + 1) + words[parts[1]])
            key_columns.append(column)
        else:
            raise ValueError(f"term {' '.join(parts)!r} is not a unigram or bigram")
    order = np.argsort(np.asarray(keys, dtype=np.int64), kind="stable")
    # a sentinel larger than any key, so searchsorted never runs off the end
    bigram_keys = np.append(np.asarray(keys, dtype=np.int64)[order], np.iinfo(np.int64).max)
    bigram_columns = np.append(np.asarray(key_columns, dtype=np.int32)[order], np.int32(-1))
    return {
        "words": list(words),
        "unigram_column": unigram_column,
        "bigram_keys": bigram_keys,
        "bigram_columns": bigram_columns,
    }


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _counted(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values, ascending, and how often each occurs: `np.unique(values,
    return_counts=True)` without its argument handling, which costs more than the sort on the few
    hundred terms of an e-mail. Sorts `values` in place."""
    values.sort()
    n = len(values)
    edges = np.empty(n + 1, dtype=bool)  # edges[i]: a run of equal values starts (or ends) at i
    edges[0] = edges[n] = True
    np.not_equal(values[1:], values[:-1], out=edges[1:n])
    at = edges.nonzero()[0]
    return values[at[:-1]], at[1:] - at[:-1]


def _tf_table(size: int) -> np.ndarray:
    """1 + ln(k) at index k >= 1 (sublinear tf), as numpy computes it; index 0 is unused."""
    table = np.zeros(size, dtype=np.float64)
    table[1:] = 1.0 + np.log(np.arange(1, size, dtype=np.float64))
    return table


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class ScamClassifier:
    """P(scam) for an e-mail text. Thread-safe after load (read-only state)."""

    info: ModelInfo
    metadata: dict[str, Any]

    def __init__(
        self,
        *,
        info: ModelInfo,
        metadata: dict[str, Any],
        words: Sequence[str],
        unigram_column: np.ndarray,
        bigram_keys: np.ndarray,
        bigram_columns: np.ndarray,
        idf: np.ndarray,
        weights: np.ndarray,
        bias: float,
        calibration: tuple[float, float, float] = (1.0, 0.0, 0.0),
        use_native: bool = True,
    ) -> None:
        self.info = info
        self.metadata = metadata
        self._word_ids = dict(zip(words, range(len(words)), strict=True))
        self._unknown = len(words)
        self._unigram_column = unigram_column.astype(np.int64)
        self._bigram_keys = bigram_keys.astype(np.int64)
        self._bigram_columns = bigram_columns.astype(np.int64)
        # per column: weight * idf and idf**2, the two numbers the l2-normalised dot product needs
        self._weighted_idf = weights * idf
        self._idf_squared = idf * idf
        self._use_bigrams = len(bigram_keys) > 1
        self._bias = bias
        self._slope, self._intercept, self._evidence_k = calibration
        # tf = 1 + ln(count), by count: one table (grown on demand) serves both scorers, so they
        # cannot differ in how the logarithm is computed.
        self._tf = _tf_table(256)
        self._native = (
            native.Scorer(
                words,
                self._unigram_column,
                self._bigram_keys,
                self._bigram_columns,
                self._weighted_idf,
                self._idf_squared,
            )
            if use_native and native is not None
            else None
        )

    @property
    def scorer(self) -> str:
        """Which scorer runs: "native" (runtime._native) or "numpy" (not built, or turned off)."""
        return "numpy" if self._native is None else "native"

    @classmethod
    def load(
        cls, model_dir: pathlib.Path | str = DEFAULT_MODEL_DIR, *, use_native: bool = True
    ) -> ScamClassifier:
        """Load and verify an artifact directory; raise ModelLoadError saying what is wrong."""
        model_dir = pathlib.Path(model_dir)
        meta_path = model_dir / METADATA_FILE
        if not model_dir.is_dir():
            raise ModelLoadError(f"model directory {model_dir} does not exist (set SCAMGUARD_MODEL_DIR)")
        try:
            metadata = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelLoadError(f"{meta_path} is missing: not a model artifact directory") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f"{meta_path} is not readable JSON: {exc}") from exc
        if not isinstance(metadata, dict):
            raise ModelLoadError(f"{meta_path} must hold a JSON object")
        try:
            info = ModelInfo(
                name=str(metadata["name"]),
                version=str(metadata["version"]),
                threshold=float(metadata["threshold"]),
                created_at=str(metadata["created_at"]),
            )
            files: dict[str, str] = dict(metadata["files"])
            model_file = str(metadata["model_file"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"{meta_path} lacks a valid field: {exc!r}") from exc
        if info.name != MODEL_NAME:
            raise ModelLoadError(f"{meta_path} describes model {info.name!r}, expected {MODEL_NAME!r}")
        if not 0.0 <= info.threshold <= 1.0:
            raise ModelLoadError(f"threshold {info.threshold} in {meta_path} is outside [0, 1]")
        if model_file not in files:
            raise ModelLoadError(f"{meta_path} has no sha256 for its model file {model_file!r}")
        for name, expected in files.items():
            path = model_dir / name
            if pathlib.PurePath(name).is_absolute() or ".." in pathlib.PurePath(name).parts:
                raise ModelLoadError(f"{meta_path} lists a file outside the artifact: {name!r}")
            if not path.is_file():
                raise ModelLoadError(f"artifact file {path} is missing")
            actual = _sha256(path)
            if actual != expected:
                raise ModelLoadError(
                    f"checksum mismatch for {path}: sha256 {actual}, metadata.json expects {expected}; "
                    "the artifact is corrupt or was edited - restore it or retrain with training.train"
                )
        model_path = model_dir / model_file
        try:
            model = json.loads(model_path.read_text(encoding="utf-8"))
            if model.get("format") != MODEL_FORMAT:
                raise ModelLoadError(
                    f"{model_path} has format {model.get('format')!r}, expected {MODEL_FORMAT!r}; "
                    "retrain with this version of training.train"
                )
            features = model["features"]
            if (
                features["ngram_max"] not in (1, 2)
                or not features["sublinear_tf"]
                or features["norm"] != "l2"
            ):
                raise ModelLoadError(f"{model_path}: unsupported feature settings {features}")
            for key in ("vocab_file", "arrays_file"):
                if model[key] not in files:
                    raise ModelLoadError(f"{meta_path} has no sha256 for {model[key]!r}")
            words = (model_dir / model["vocab_file"]).read_text(encoding="utf-8").split("\n")
            with np.load(model_dir / model["arrays_file"], allow_pickle=False) as arrays:
                unigram_column = arrays["unigram_column"]
                bigram_keys = arrays["bigram_keys"]
                bigram_columns = arrays["bigram_columns"]
                idf = arrays["idf_e4"].astype(np.float64) / IDF_SCALE
                weights = arrays["weights"].astype(np.float64) * float(model["weight_scale"])
            n_terms = int(model["n_terms"])
            if len(words) != int(model["n_words"]) or len(unigram_column) != len(words) + 1:
                raise ModelLoadError(f"{model_path}: vocabulary and unigram table sizes disagree")
            if not len(idf) == len(weights) == n_terms or len(bigram_keys) != len(bigram_columns):
                raise ModelLoadError(f"{model_path}: array lengths disagree with n_terms {n_terms}")
            if max(int(unigram_column.max(initial=-1)), int(bigram_columns.max(initial=-1))) >= n_terms:
                raise ModelLoadError(f"{model_path}: a lookup table points past the last term")
            return cls(
                info=info,
                metadata=metadata,
                words=words,
                unigram_column=unigram_column,
                bigram_keys=bigram_keys,
                bigram_columns=bigram_columns,
                idf=idf,
                weights=weights,
                bias=float(model["bias"]),
                calibration=(
                    float(model["calibration"]["slope"]),
                    float(model["calibration"]["intercept"]),
                    float(model["calibration"]["evidence_k"]),
                ),
                use_native=use_native,
            )
        except ModelLoadError:
            raise
        except (
            OSError,
            UnicodeDecodeError,
            json.JSONDecodeError,
            KeyError,
            TypeError,
            ValueError,
            zipfile.BadZipFile,
        ) as exc:
            raise ModelLoadError(
                f"{model_path} (or the files it names) is not a valid model: {exc!r}"
            ) from exc

    def decision_function(self, text: str) -> float:
        """The calibrated logit for `text` (before the sigmoid); see `_calibrated`."""
        return self.decisions((text,))[0]

    def decisions(self, texts: Sequence[str]) -> list[float]:
        """The calibrated logits of `texts`. Compiled: one C call per text. With numpy, scored
        together: a batch pays the dozen numpy calls once, not once per text, so its cost per text
        is little more than normalisation."""
        if self._native is not None:
            return [self._calibrated_sums(*self._native_sums(normalize(text))) for text in texts]
        token_lists = [tokens(normalize(text)) for text in texts]
        batch = len(token_lists)
        flat = token_lists[0] if batch == 1 else list(chain.from_iterable(token_lists))
        unknown = self._unknown
        ids = np.fromiter(map(self._word_ids.get, flat, repeat(unknown)), dtype=np.int64, count=len(flat))
        # text_of[i]: the text that term occurrence i came from (a single text needs no index)
        text_of = np.repeat(np.arange(batch), [len(t) for t in token_lists]) if batch > 1 else None
        columns = self._unigram_column[ids]
        if self._use_bigrams and len(ids) > 1:
            known = ids != unknown
            pairs = known[:-1] & known[1:]  # a pair with an unknown word cannot be a term
            if text_of is not None:
                pairs &= text_of[:-1] == text_of[1:]  # nor can a pair that spans two texts
            keys = (ids[:-1] * (unknown + 1) + ids[1:])[pairs]
            # Sorted keys make the binary search walk the 4 MB key table in order (numpy reuses
            # each bound for the next key): on real mail, sorting first cuts it from 64 to 42 us.
            pair_text = None
            if text_of is None:
                keys.sort()
            else:
                order = np.argsort(keys)
                keys, pair_text = keys[order], text_of[:-1][pairs][order]
            bigram_keys = self._bigram_keys
            pos = np.searchsorted(bigram_keys, keys)
            hit = bigram_keys[pos] == keys
            columns = np.concatenate((columns, self._bigram_columns[pos[hit]]))
            if text_of is not None and pair_text is not None:
                text_of = np.concatenate((text_of, pair_text[hit]))
        found = columns >= 0
        columns = columns[found]
        if text_of is None:
            present, counts = _counted(columns)
            present_text = np.zeros(len(present), dtype=np.intp)
            evidence = [len(columns)]
        else:  # one sort for the whole batch: each (text, column) pair as one integer key
            text_of = text_of[found]
            n_terms = len(self._weighted_idf)
            present, counts = _counted(text_of * n_terms + columns)
            present_text, present = np.divmod(present, n_terms)
            evidence = np.bincount(text_of, minlength=batch).tolist()
        # Sums per text in one order whatever the batch (bincount adds in sequence), so a text
        # scores the same, to the last bit, alone or in any batch.
        tf = self._tf_of(counts)
        dots = np.bincount(present_text, self._weighted_idf[present] * tf, batch).tolist()
        squares = np.bincount(present_text, self._idf_squared[present] * (tf * tf), batch).tolist()
        return [
            self._calibrated_sums(dot, sq, n_found)
            for dot, sq, n_found in zip(dots, squares, evidence, strict=True)
        ]

    def _native_sums(self, normalized: str) -> tuple[float, float, int]:
        assert self._native is not None
        while (sums := self._native.sums(normalized, self._tf)) is None:  # a term occurs len(tf)+ times
            self._tf = _tf_table(2 * len(self._tf))
        return sums

    def _tf_of(self, counts: np.ndarray) -> np.ndarray:
        while len(counts) and counts.max() >= len(self._tf):
            self._tf = _tf_table(2 * len(self._tf))
        return self._tf[counts]

    def _calibrated_sums(self, dot: float, squares: float, found: int) -> float:
        return self._calibrated(dot / math.sqrt(squares) + self._bias if found else self._bias, found)

    def _calibrated(self, z: float, evidence: int) -> float:
        """slope * z * n / (n + k) + intercept, n = vocabulary terms found: little text, little say."""
        if self._evidence_k > 0:
            z *= evidence / (evidence + self._evidence_k)
        return self._slope * z + self._intercept

    def score(self, text: str) -> float:
        """P(scam) in [0, 1]."""
        return _sigmoid(self.decision_function(text))

    def score_many(self, texts: Sequence[str]) -> list[float]:
        """P(scam) of each text, scored as one batch (see `decisions`)."""
        return [_sigmoid(z) for z in self.decisions(texts)] if texts else []

    def is_scam(self, score: float) -> bool:
        return score >= self.info.threshold
