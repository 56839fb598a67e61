"""Fixtures for the model tests: the shared corpora beside the repository (../shared/data)."""

from __future__ import annotations

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA_DIR = pathlib.Path(os.environ.get("SCAMGUARD_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
ENRON = DATA_DIR / "enron_spam_6subsets.csv.gz"
SMS = DATA_DIR / "sms_spam_collection_5572.csv"
EVAL = DATA_DIR / "eval_nazario_phish_vs_spamassassin_easyham.csv.gz"
MODERN = DATA_DIR / "phishing_pot_2022_2024.csv.gz"
MODEL_DIR = REPO_ROOT / "runtime" / "model"


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    """The shared data; its absence fails in CI (CI=true) instead of silently skipping the gate."""
    missing = [p.name for p in (ENRON, SMS, EVAL, MODERN) if not p.is_file()]
    if missing:
        message = f"shared data missing in {DATA_DIR}: {missing} (CI clones ../shared beside the repo)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return DATA_DIR
