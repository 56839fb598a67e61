"""Ablation for model 2.0: what each lever bought on modern phishing, cross-domain mail and ordinary mail.

    uv run --project training python scripts/model_ablation_modern.py \
        [--data-dir ../shared/data] [--only NAME ...]

Every row trains the full pipeline of `training.train` (before pruning and quantising, ~2 min a row) on
Enron-Spam + SMS (+ the Phishing Pot rows dated up to the time-split day where the row says so),
calibrates and picks its threshold on the validation split, then reports:
- `val_f1`, `enron_f1`: the validation split and the held-out Enron rows (the in-domain bar);
- `eval_p` / `eval_f1`: the cross-domain evaluation set (near_dup_in_A == 0);
- `r24_<lang>`: recall on the Phishing Pot rows dated after the time-split day, per language;
- `benign_fpr` / `scam_recall`: the plain-mail suite (training/suites/plain_mail.csv);
- `brier`: on the held-out test split.
The 2024 rows, the evaluation set and the suite are scored after each model is fixed; they were
looked at to write docs/model/experiments.md (which says so), never used by the pipeline to choose.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from dataclasses import replace
from typing import Any

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from runtime.text import normalize
from training.train import (
    SUITE_FILE,
    TrainConfig,
    binary_metrics,
    dedupe,
    load_eval_examples,
    read_examples,
    time_split,
    train_splits,
)

_V1 = replace(TrainConfig(), vocab_languages=("en",), source_weights=(), prune_to=0, weight_bits=0)
_LANGS = ("en", "pt", "de", "es", "fr")
# name -> (configuration, train on the modern rows, calibrate)
PLAN: dict[str, tuple[TrainConfig, bool, bool]] = {
    "1 model 1.x pipeline, 1.x data": (_V1, False, False),
    "2 + Phishing Pot rows up to 2023": (_V1, True, False),
    "3 + vocabulary of en/pt/de/es/fr": (replace(_V1, vocab_languages=_LANGS), True, False),
    "3b + pt/de/es/fr background documents (rejected)": (
        replace(_V1, vocab_languages=_LANGS, background_languages=_LANGS[1:]),
        True,
        False,
    ),
    "4 + modern rows weighted x3": (
        replace(_V1, vocab_languages=_LANGS, source_weights=(("phishing_pot", 3.0),)),
        True,
        False,
    ),
    "5 + calibration with evidence shrinkage (shipped 2.0)": (
        replace(_V1, vocab_languages=_LANGS, source_weights=(("phishing_pot", 3.0),)),
        True,
        True,
    ),
    "5, C=6": (
        replace(_V1, vocab_languages=_LANGS, source_weights=(("phishing_pot", 3.0),), c=6.0),
        True,
        True,
    ),
    "5, C=10": (
        replace(_V1, vocab_languages=_LANGS, source_weights=(("phishing_pot", 3.0),), c=10.0),
        True,
        True,
    ),
    "5, threshold at 2% validation FPR": (
        replace(_V1, vocab_languages=_LANGS, source_weights=(("phishing_pot", 3.0),), threshold_max_fpr=0.02),
        True,
        True,
    ),
}
COLUMNS = (
    "val_f1",
    "enron_f1",
    "eval_p",
    "eval_f1",
    "r24_en",
    "r24_de",
    "r24_pt",
    "r24_es",
    "r24_fr",
    "benign_fpr",
    "scam_recall",
    "brier",
)


def run(name: str, config: TrainConfig, modern: bool, calibrate: bool, data: pathlib.Path) -> dict[str, Any]:
    started = time.perf_counter()
    examples = read_examples(data / "enron_spam_6subsets.csv.gz", for_training=True)
    examples += read_examples(data / "sms_spam_collection_5572.csv", for_training=True)
    earlier, later = time_split(
        read_examples(data / "phishing_pot_2022_2024.csv.gz", for_training=True), TrainConfig.time_split_after
    )
    texts, labels, sources, _ = dedupe(examples + (earlier if modern else []))
    trained = train_splits(texts, labels, sources, config, calibrate=calibrate)
    fitted, threshold = trained.fitted, trained.threshold
    val, test = trained.val_idx, trained.test_idx
    pick = lambda idx, seq: [seq[i] for i in idx]  # noqa: E731

    def scored(rows: list[Any]) -> tuple[list[int], np.ndarray]:
        return [ex.label for ex in rows], fitted.sk_scores([normalize(ex.text) for ex in rows])

    row: dict[str, Any] = {"name": name, "threshold": round(threshold, 4)}
    row["val_f1"] = binary_metrics(pick(val, labels), fitted.sk_scores(pick(val, texts)), threshold)["f1"]
    test_scores = fitted.sk_scores(pick(test, texts))
    enron = [k for k, i in enumerate(test) if sources[i].startswith("enron_spam_6subsets/")]
    row["enron_f1"] = binary_metrics([labels[test[k]] for k in enron], test_scores[enron], threshold)["f1"]
    row["brier"] = binary_metrics(pick(test, labels), test_scores, threshold)["brier"]
    m = binary_metrics(
        *scored(load_eval_examples(data / "eval_nazario_phish_vs_spamassassin_easyham.csv.gz")), threshold
    )
    row["eval_p"], row["eval_f1"] = m["precision"], m["f1"]
    for lang in ("en", "de", "pt", "es", "fr"):
        y, s = scored([ex for ex in later if ex.row.get("lang_guess") == lang])
        row[f"r24_{lang}"] = round(float(np.mean(s >= threshold)), 3)
    suite = read_examples(SUITE_FILE, for_training=False)
    y, s = scored(suite)
    flagged = s >= threshold
    row["benign_fpr"] = round(float(np.mean(flagged[np.asarray(y) == 0])), 3)
    row["scam_recall"] = round(float(np.mean(flagged[np.asarray(y) == 1])), 3)
    row["seconds"] = round(time.perf_counter() - started)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        type=pathlib.Path,
        default=pathlib.Path(__file__).resolve().parents[2] / "shared" / "data",
    )
    parser.add_argument("--only", nargs="*", help="row names (prefixes) to run")
    args = parser.parse_args()
    rows = []
    for name, (config, modern, calibrate) in PLAN.items():
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        rows.append(run(name, config, modern, calibrate, args.data_dir))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| configuration | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for row in rows:
        print(f"| {row['name']} | " + " | ".join(f"{row[c]:.3f}" for c in COLUMNS) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
