"""The serving-side loader and scorer: checksums, clear load errors, scores, no scikit-learn."""

from __future__ import annotations

import hashlib
import json
import pathlib
import random
import shutil
import subprocess
import sys

import pytest

from runtime.classifier import DEFAULT_MODEL_DIR, ModelInfo, ModelLoadError, ScamClassifier

from .adversarial_texts import adversarial, ordinary_html
from .conftest import MODEL_DIR, REPO_ROOT

PHISH = (
    "Subject: Urgent: your account has been suspended\nDear valued customer,\nWe detected unusual activity. "
    "Please verify your account information within 24 hours at http://secure-login.example-bank.ru/verify "
    "or your account will be closed."
)
HAM = (
    "Subject: lunch on friday\nHi Anna, are we still on for lunch on Friday at noon? I can book a table. Ben"
)


@pytest.fixture
def artifact_copy(tmp_path: pathlib.Path) -> pathlib.Path:
    target = tmp_path / "model"
    shutil.copytree(MODEL_DIR, target)
    return target


def test_default_dir_is_the_committed_artifact() -> None:
    assert DEFAULT_MODEL_DIR.resolve() == MODEL_DIR.resolve()


def test_committed_artifact_loads_with_its_metadata() -> None:
    clf = ScamClassifier.load(MODEL_DIR)
    meta = json.loads((MODEL_DIR / "metadata.json").read_text())
    assert isinstance(clf.info, ModelInfo)
    assert clf.info.name == "scam-classifier"
    assert clf.info.version == meta["version"]
    assert clf.info.threshold == meta["threshold"]
    assert clf.info.created_at == meta["created_at"]
    assert 0.0 < clf.info.threshold < 1.0
    # every file of the artifact is covered by a checksum, and the artifact stays small
    listed = set(meta["files"]) | {"metadata.json"}
    assert {p.name for p in MODEL_DIR.iterdir() if p.is_file()} == listed
    assert sum(p.stat().st_size for p in MODEL_DIR.iterdir()) <= 20 * 1024 * 1024
    assert meta["training_data"]["sha256"]
    assert {"validation", "heldout_test", "evaluation_set"} <= set(meta["metrics"])


def test_scores_are_probabilities_and_rank_phishing_above_ham() -> None:
    clf = ScamClassifier.load(MODEL_DIR)
    phish, ham = clf.score(PHISH), clf.score(HAM)
    assert 0.0 <= ham < phish <= 1.0
    assert clf.is_scam(phish)
    assert not clf.is_scam(ham)
    assert clf.is_scam(clf.info.threshold)
    assert clf.score_many([PHISH, HAM, ""]) == [phish, ham, clf.score("")]


@pytest.mark.parametrize("use_native", [True, False], ids=["native", "numpy"])
def test_a_text_scores_the_same_alone_and_in_any_batch(use_native: bool) -> None:
    """A batch is scored in one pass (`decisions`), a single text without the per-text index: the
    two must agree to the last bit, whatever the batch's order, duplicates or empty texts."""
    clf = ScamClassifier.load(MODEL_DIR, use_native=use_native)
    texts = [PHISH, HAM, "", "zzqx qqzx", "verify", PHISH, *adversarial(2_000).values(), ordinary_html(3_000)]
    alone = [clf.score(text) for text in texts]
    assert clf.score_many(texts) == alone
    order = list(range(len(texts)))
    random.Random(7).shuffle(order)
    assert clf.score_many([texts[k] for k in order]) == [alone[k] for k in order]
    assert clf.score_many([]) == []


@pytest.mark.parametrize("use_native", [True, False], ids=["native", "numpy"])
def test_no_bigram_spans_two_texts_of_a_batch(use_native: bool) -> None:
    """The last word of one text and the first of the next are not a pair: with a known bigram
    split across them, each text still scores as it does alone."""
    clf = ScamClassifier.load(MODEL_DIR, use_native=use_native)
    # "click here" is a term of the model (else this test would prove nothing)
    words = clf._word_ids
    assert words["click"] * (len(words) + 1) + words["here"] in clf._bigram_keys
    first, second = "please click", "here to verify your account"
    assert clf.decisions([first, second]) == [clf.decision_function(first), clf.decision_function(second)]
    assert clf.decisions([first, second])[0] != clf.decision_function(f"{first} {second}")


@pytest.mark.parametrize("text", ["", " ", "\x00\x01", "<html></html>", "€" * 10_000, "a" * 200_000])
def test_degenerate_inputs_score_without_error(text: str) -> None:
    assert 0.0 <= ScamClassifier.load(MODEL_DIR).score(text) <= 1.0


@pytest.mark.parametrize("name", ["model.json", "vocab.txt", "weights.npz", "MODEL_CARD.md"])
def test_tampered_artifact_file_is_rejected(artifact_copy: pathlib.Path, name: str) -> None:
    path = artifact_copy / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=rf"checksum mismatch for .*{name}"):
        ScamClassifier.load(artifact_copy)


def test_appended_bytes_are_rejected(artifact_copy: pathlib.Path) -> None:
    with (artifact_copy / "MODEL_CARD.md").open("a") as fh:
        fh.write("edited\n")
    with pytest.raises(ModelLoadError, match="checksum mismatch"):
        ScamClassifier.load(artifact_copy)


def test_missing_model_file_is_rejected(artifact_copy: pathlib.Path) -> None:
    (artifact_copy / "model.json").unlink()
    with pytest.raises(ModelLoadError, match=r"model\.json is missing"):
        ScamClassifier.load(artifact_copy)


def test_missing_metadata_is_rejected(artifact_copy: pathlib.Path) -> None:
    (artifact_copy / "metadata.json").unlink()
    with pytest.raises(ModelLoadError, match=r"metadata\.json is missing"):
        ScamClassifier.load(artifact_copy)


def test_missing_directory_is_rejected(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        ScamClassifier.load(tmp_path / "nope")


def test_corrupt_metadata_is_rejected(artifact_copy: pathlib.Path) -> None:
    (artifact_copy / "metadata.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not readable JSON"):
        ScamClassifier.load(artifact_copy)


def test_metadata_without_checksum_for_the_model_is_rejected(artifact_copy: pathlib.Path) -> None:
    meta_path = artifact_copy / "metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["files"]["model.json"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="no sha256"):
        ScamClassifier.load(artifact_copy)


def test_metadata_pointing_outside_the_artifact_is_rejected(artifact_copy: pathlib.Path) -> None:
    meta_path = artifact_copy / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["files"]["../secret"] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="outside the artifact"):
        ScamClassifier.load(artifact_copy)


def _rewrite_with_valid_checksum(artifact: pathlib.Path, name: str, content: bytes) -> None:
    """Replace a file *and* its recorded sha256: only the content checks can catch it."""
    (artifact / name).write_bytes(content)
    meta_path = artifact / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["files"][name] = hashlib.sha256(content).hexdigest()
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("model.json", b'{"format": "linear-tfidf/1"}', "format"),
        ("model.json", b'{"format": "linear-tfidf/2"}', "format"),
        ("model.json", b'{"format": "linear-tfidf/3"}', "not a valid model"),
        ("weights.npz", b"PK\x03\x04 not really a zip", "not a valid model"),
        ("vocab.txt", b"only\nthree\nwords", "sizes disagree"),
    ],
)
def test_valid_checksum_but_bad_content_is_rejected(
    artifact_copy: pathlib.Path, name: str, content: bytes, reason: str
) -> None:
    _rewrite_with_valid_checksum(artifact_copy, name, content)
    with pytest.raises(ModelLoadError, match=reason):
        ScamClassifier.load(artifact_copy)


def test_serving_path_does_not_import_scikit_learn() -> None:
    code = (
        "import sys; from runtime.classifier import ScamClassifier; "
        "c = ScamClassifier.load(); c.score('hello'); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy', 'wordfreq')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=60)
