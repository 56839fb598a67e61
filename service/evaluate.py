"""Evaluate a model artifact on a labelled CSV and print the figures as JSON.

    python -m service.evaluate --data ../shared/data/eval_nazario_phish_vs_spamassassin_easyham.csv.gz \
        [--model service/model] [--all-rows]

For the shared evaluation set, rows whose phishing text is a near-copy of training spam
(`near_dup_in_A == 1`) are left out by default, so the figures measure generalisation to unseen mail.
Also renders the model card (`MODEL_CARD.md`) from an artifact's metadata.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Sequence

from service.classifier import DEFAULT_MODEL_DIR, ModelLoadError, ScamClassifier
from service.train import DataError, evaluate_examples, load_eval_examples

__all__ = ["evaluate_examples", "load_eval_examples", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service.evaluate", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--data", required=True, type=pathlib.Path, help="labelled CSV or CSV.gz")
    parser.add_argument("--model", type=pathlib.Path, default=DEFAULT_MODEL_DIR, help="artifact directory")
    parser.add_argument("--all-rows", action="store_true", help="keep near_dup_in_A == 1 rows")
    args = parser.parse_args(argv)
    try:
        clf = ScamClassifier.load(args.model)
        examples = load_eval_examples(args.data, all_rows=args.all_rows)
    except (ModelLoadError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = {
        "model": {"name": clf.info.name, "version": clf.info.version, "dir": str(args.model)},
        "data": str(args.data),
        "filter": None if args.all_rows else "near_dup_in_A == 0 (when the column exists)",
        **evaluate_examples(clf, examples),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
