"""The model runtime's tests: the committed artifact in runtime/model."""

from __future__ import annotations

import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL_DIR = REPO_ROOT / "runtime" / "model"
