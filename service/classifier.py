"""Serving-time scam classifier: a linear model over a precomputed vocabulary, in pure Python.

The artifact (written by `python -m service.train`) is a directory with
- `metadata.json`: name, version, created_at, threshold, metrics, training-data fingerprint and the
  sha256 of every other file in the artifact;
- `model.json`: the feature settings, the bias and, per vocabulary term, its TF-IDF weight (idf) and
  its linear weight.

Scoring reproduces scikit-learn's `TfidfVectorizer` (l2-normalised, binary or sublinear tf) followed
by `LogisticRegression.predict_proba`, without importing scikit-learn: normalise the text, look each
distinct token up in one dict, accumulate two sums, apply the sigmoid. That is a few microseconds
per kilobyte, and loading is a single JSON parse.
"""

from __future__ import annotations

import hashlib
import json
import math
import pathlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.text import normalize, tokens

__all__ = ["DEFAULT_MODEL_DIR", "ModelInfo", "ModelLoadError", "ScamClassifier", "featurize"]

DEFAULT_MODEL_DIR = pathlib.Path(__file__).resolve().parent / "model"
METADATA_FILE = "metadata.json"
MODEL_NAME = "scam-classifier"
MODEL_FORMAT = "linear-tfidf/1"


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


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
        table: dict[str, tuple[float, float]],
        bias: float,
        sublinear_tf: bool,
        ngram_max: int,
    ) -> None:
        self.info = info
        self.metadata = metadata
        # term -> (weight * idf, idf**2): the two numbers the l2-normalised dot product needs.
        self._table = table
        self._bias = bias
        self._sublinear_tf = sublinear_tf
        self._ngram_max = ngram_max

    @classmethod
    def load(cls, model_dir: pathlib.Path | str = DEFAULT_MODEL_DIR) -> ScamClassifier:
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
                    "the artifact is corrupt or was edited - restore it or retrain with service.train"
                )
        model_path = model_dir / model_file
        try:
            model = json.loads(model_path.read_text(encoding="utf-8"))
            if model["format"] != MODEL_FORMAT:
                raise ModelLoadError(
                    f"{model_path} has format {model['format']!r}, expected {MODEL_FORMAT!r}"
                )
            terms: list[str] = model["terms"]
            idf: list[float] = model["idf"]
            weights: list[float] = model["weights"]
            scale = float(model.get("weight_scale", 1.0))
            if not len(terms) == len(idf) == len(weights):
                raise ModelLoadError(f"{model_path}: terms, idf and weights differ in length")
            table = {t: (w * scale * i, i * i) for t, i, w in zip(terms, idf, weights, strict=True)}
            features = model["features"]
            return cls(
                info=info,
                metadata=metadata,
                table=table,
                bias=float(model["bias"]),
                sublinear_tf=bool(features["sublinear_tf"]),
                ngram_max=int(features["ngram_max"]),
            )
        except ModelLoadError:
            raise
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"{model_path} is not a valid model file: {exc!r}") from exc

    def decision_function(self, text: str) -> float:
        """The linear model's logit for `text` (before the sigmoid)."""
        terms = featurize(normalize(text), self._ngram_max)
        table = self._table
        dot = 0.0
        sq = 0.0
        if self._sublinear_tf:
            for term, count in Counter(terms).items():
                entry = table.get(term)
                if entry is not None:
                    tf = 1.0 + math.log(count)
                    dot += entry[0] * tf
                    sq += entry[1] * tf * tf
        else:
            for term in set(terms):
                entry = table.get(term)
                if entry is not None:
                    dot += entry[0]
                    sq += entry[1]
        if sq > 0.0:
            dot /= math.sqrt(sq)
        return dot + self._bias

    def score(self, text: str) -> float:
        """P(scam) in [0, 1]."""
        return _sigmoid(self.decision_function(text))

    def score_many(self, texts: Sequence[str]) -> list[float]:
        return [self.score(text) for text in texts]

    def is_scam(self, score: float) -> bool:
        return score >= self.info.threshold
