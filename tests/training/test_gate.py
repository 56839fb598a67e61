"""Quality gate: re-score the committed artifact with the serving code path on every data set its
model card reports: the cross-domain evaluation set, the held-out split of its own training data
(rebuilt from the recorded config), the time-split rows per language and the plain-mail suite."""

from __future__ import annotations

import json
import pathlib

import pytest

from runtime.classifier import ScamClassifier
from training.evaluate import heldout_examples, later_examples
from training.train import (
    HELDOUT_SOURCES,
    binary_metrics,
    by_language,
    evaluate_examples,
    load_eval_examples,
    suite_report,
    without_links,
)

from .conftest import EVAL, MODEL_DIR

# Gates at the level model 2.0.0 reached; issue 14's goals where reached, else the figure reached
# (docs/model/experiments.md shows the trade-off). Raise a gate when a model reaches more; never
# lower one to make a model pass.
EVAL_F1_GATE = 0.92  # goal 0.92: reached
EVAL_PRECISION_GATE = 0.90  # goal 0.90: reached
HELDOUT_ENRON_F1_GATE = 0.94  # goal 0.97: NOT reached (1.0.0: 0.963; the price of the modern data)
TIME_SPLIT_RECALL_EN_GATE = 0.89  # goal 0.93: NOT reached (1.0.0: 0.70)
TIME_SPLIT_RECALL_OTHER_GATE = 0.90  # goal 0.90 for each other language: reached
PLAIN_MAIL_BENIGN_FPR_GATE = 0.10  # at most this share of ordinary mail flagged
PLAIN_MAIL_SCAM_RECALL_GATE = 0.55  # goal: link-less scams caught; NOT reached


@pytest.fixture(scope="module")
def clf() -> ScamClassifier:
    return ScamClassifier.load(MODEL_DIR)


@pytest.mark.slow
def test_evaluation_set_gate(data_dir: pathlib.Path, clf: ScamClassifier) -> None:
    examples = load_eval_examples(EVAL)
    assert len(examples) == 2921  # near_dup_in_A == 0: 513 phishing + 2408 legitimate
    m = evaluate_examples(clf, examples)
    assert m["support_scam"] == 513
    assert m["f1"] >= EVAL_F1_GATE, m
    assert m["precision"] >= EVAL_PRECISION_GATE, m
    # the figures in the committed metadata are the ones this code reproduces
    recorded = clf.metadata["metrics"]["evaluation_set"]
    assert recorded["f1"] == pytest.approx(m["f1"], abs=1e-4)
    assert recorded["precision"] == pytest.approx(m["precision"], abs=1e-4)


@pytest.mark.slow
def test_heldout_in_domain_gate(data_dir: pathlib.Path, clf: ScamClassifier) -> None:
    """Rebuild the exact held-out test split (same files, time split, dedupe, seed) and score it."""
    texts, labels, sources = heldout_examples(clf, data_dir)
    enron = [k for k, s in enumerate(sources) if s.startswith(HELDOUT_SOURCES["heldout_test_enron"])]
    scores = clf.score_many([texts[k] for k in enron])
    m = binary_metrics([labels[k] for k in enron], scores, clf.info.threshold)
    assert m["f1"] >= HELDOUT_ENRON_F1_GATE, m
    assert json.dumps(m["f1"]) == json.dumps(clf.metadata["metrics"]["heldout_test_enron"]["f1"])


@pytest.mark.slow
def test_time_split_gate(data_dir: pathlib.Path, clf: ScamClassifier) -> None:
    """Phishing received after the training data's last day, per language, never trained on."""
    later = later_examples(clf, data_dir)
    assert len(later) == clf.metadata["training_data"]["time_split_rows"] > 1500
    assert all(ex.row["date"] > clf.metadata["config"]["time_split_after"] for ex in later)
    languages = by_language(clf, later)
    assert languages["en"]["recall"] >= TIME_SPLIT_RECALL_EN_GATE, languages["en"]
    others = {k: v["recall"] for k, v in languages.items() if k not in ("en", "unknown", "other")}
    assert set(others) == {"de", "es", "fr", "pt"}
    assert min(others.values()) >= TIME_SPLIT_RECALL_OTHER_GATE, others
    recorded = clf.metadata["metrics"]["time_split"]
    assert recorded["by_language"]["en"]["recall"] == languages["en"]["recall"]
    assert recorded["without_links"] == evaluate_examples(clf, without_links(later))


def test_plain_mail_gate(clf: ScamClassifier) -> None:
    """Ordinary short mail passes; scams without a link are caught (the suite needs no shared data)."""
    report = suite_report(clf)
    assert report["benign"] >= 60
    assert report["scams"] >= 20
    assert report["benign_false_positive_rate"] <= PLAIN_MAIL_BENIGN_FPR_GATE, report["false_positives"]
    assert report["scam_recall"] >= PLAIN_MAIL_SCAM_RECALL_GATE, report["missed_scams"]
    assert clf.metadata["metrics"]["plain_mail"] == report


def test_scores_are_calibrated_on_the_heldout_split(clf: ScamClassifier) -> None:
    """Every well-filled bin of the recorded reliability table: mean score near the scam share."""
    table = clf.metadata["metrics"]["reliability_heldout_test"]
    assert sum(row["count"] for row in table) == clf.metadata["splits"]["heldout_test"]
    for row in table:
        if row["count"] >= 100:
            assert abs(row["mean_score"] - row["scam_rate"]) <= 0.05, row
    assert clf.metadata["metrics"]["heldout_test"]["brier"] <= 0.03
