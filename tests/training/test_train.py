"""The training command end to end on a small sample, and serving == scikit-learn."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from runtime.classifier import ScamClassifier
from runtime.text import normalize
from training.train import (
    Calibration,
    DataError,
    background_texts,
    config_from_dict,
    export_model,
    fit,
    read_examples,
    write_artifact,
)

from .conftest import ENRON, EVAL, REPO_ROOT, SMS


@pytest.mark.slow
def test_training_command_on_a_sample_writes_a_loadable_artifact(data_dir: pathlib.Path, tmp_path) -> None:
    out = tmp_path / "model"
    started = time.monotonic()
    result = subprocess.run(
        [
            *(sys.executable, "-m", "training.train", "--data", str(ENRON), "--data", str(SMS)),
            *("--out", str(out), "--sample", "3000", "--background-docs", "1000", "--version", "0.0.1-test"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 90
    report = json.loads(result.stdout)
    clf = ScamClassifier.load(out)
    assert clf.info.version == "0.0.1-test"
    assert clf.info.threshold == report["threshold"]
    meta = json.loads((out / "metadata.json").read_text())
    assert set(meta["files"]) == {"model.json", "vocab.txt", "weights.npz", "MODEL_CARD.md"}
    assert [f["name"] for f in meta["training_data"]["files"]] == [ENRON.name, SMS.name]
    # a smoke test of the command on 3,000 rows, not a quality gate (test_gate.py is)
    assert meta["metrics"]["heldout_test"]["f1"] > 0.6
    card = (out / "MODEL_CARD.md").read_text()
    assert str(meta["metrics"]["heldout_test"]["f1"]) in card


def test_training_refuses_the_evaluation_set(data_dir: pathlib.Path, tmp_path) -> None:
    with pytest.raises(DataError, match="evaluation set"):
        read_examples(EVAL, for_training=True)
    result = subprocess.run(
        [sys.executable, "-m", "training.train", "--data", str(EVAL), "--out", str(tmp_path / "m")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "evaluation set" in result.stderr
    assert not (tmp_path / "m").exists()


def test_renamed_copy_of_the_evaluation_set_is_refused_by_its_columns(tmp_path) -> None:
    fake = tmp_path / "innocent.csv"
    fake.write_text("text,label,near_dup_in_A\nhello,0,0\n")
    with pytest.raises(DataError, match="evaluation set"):
        read_examples(fake, for_training=True)


def test_both_csv_layouts_and_label_spellings_are_read(tmp_path) -> None:
    enron_like = tmp_path / "a.csv"
    enron_like.write_text('text,label,subset\n"Subject: hi\nthere",0,s1\nbuy now,1,s2\n')
    sms_like = tmp_path / "b.csv"
    sms_like.write_text("Category,Message\nham,see you\nspam,WIN cash\n")
    a = read_examples(enron_like, for_training=True)
    b = read_examples(sms_like, for_training=True)
    assert [(e.label, e.source) for e in a] == [(0, "a/s1"), (1, "a/s2")]
    assert [(e.text, e.label) for e in b] == [("see you", 0), ("WIN cash", 1)]
    bad = tmp_path / "c.csv"
    bad.write_text("foo,bar\n1,2\n")
    with pytest.raises(DataError, match="cannot find the text and label columns"):
        read_examples(bad, for_training=True)


def test_serving_predictions_equal_the_trained_scikit_learn_model(data_dir: pathlib.Path, tmp_path) -> None:
    """The pure-Python scorer on *raw* text == sklearn's predict_proba on the normalised text."""
    shipped = json.loads((REPO_ROOT / "runtime" / "model" / "metadata.json").read_text())["config"]
    config = replace(config_from_dict(shipped), min_df=2)
    rng = np.random.default_rng(0)
    examples = read_examples(ENRON, for_training=True) + read_examples(SMS, for_training=True)
    picked = [examples[i] for i in rng.choice(len(examples), size=2500, replace=False)]
    train, probe = picked[:2000], picked[2000:]
    background = background_texts(replace(config, background_docs=min(config.background_docs, 500)))
    fitted = fit(
        [normalize(e.text) for e in train] + background,
        [e.label for e in train] + [0] * len(background),
        config,
    )
    meta = {
        "name": "scam-classifier",
        "version": "t",
        "created_at": "t",
        "threshold": 0.5,
        "model_file": "model.json",
    }
    # a calibration far from the identity, so serving must apply the very same one
    fitted.calibration = Calibration(slope=1.7, intercept=-0.3, evidence_k=2.5)
    clf = write_artifact(tmp_path / "m", export_model(fitted), meta)
    raw = [e.text for e in probe] + ["hello", "", "ok thanks"]
    ours = np.asarray(clf.score_many(raw))
    theirs = fitted.sk_scores([normalize(t) for t in raw])
    assert np.max(np.abs(ours - theirs)) < 1e-9
    assert ((ours >= 0.5) == (theirs >= 0.5)).all()
