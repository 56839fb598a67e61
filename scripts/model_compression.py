"""Compare the full model against compressed variants: size, load time, latency and quality.

    uv run --project training python scripts/model_compression.py \
        [--data-dir ../shared/data] [--out-dir /tmp/scamguard-variants]

Trains the shipped configuration once on the full vocabulary, then derives variants:
- vocabulary pruning: refit logistic regression on the K terms with the largest |weight|;
- weight quantisation: 8-bit or 16-bit integers times one scale (idf rounded to 4 decimals);
Each variant gets its own validation threshold (same rule as training), is written as a real artifact
and measured with the serving code: artifact bytes, load time, p50/p99 per ~2 KB e-mail, F1 on the
held-out Enron split and on the evaluation set (near_dup_in_A == 0; reported, not used to choose
anything automatically), and the largest score difference against the unquantised model of the same
vocabulary. Prints JSON lines, then a Markdown table.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import pathlib
import sys
import tempfile
from dataclasses import replace
from typing import Any

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from bench_model import bench, typical_emails

from runtime.classifier import MODEL_NAME, featurize
from training.evaluate import evaluate_examples, load_eval_examples
from training.train import (
    MODEL_FILE,
    Fitted,
    TrainConfig,
    _fit_vocabulary,
    _quantise,
    background_texts,
    binary_metrics,
    choose_threshold,
    dedupe,
    export_model,
    fit,
    read_examples,
    split_indices,
    write_artifact,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data-dir", type=pathlib.Path, default=pathlib.Path("../shared/data"))
    parser.add_argument(
        "--out-dir", type=pathlib.Path, default=pathlib.Path(tempfile.gettempdir()) / "scamguard-variants"
    )
    parser.add_argument("--prune", type=int, nargs="*", default=[200000, 100000, 50000, 20000, 10000])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()

    # Model 1.x's configuration and data (the study behind the 1.0.0 artifact's 150k int16 choice);
    # model 2.0 keeps every term, see docs/model/experiments.md.
    config = replace(TrainConfig(), vocab_languages=("en",), source_weights=(), prune_to=150000)
    examples = read_examples(args.data_dir / "enron_spam_6subsets.csv.gz", for_training=True)
    examples += read_examples(args.data_dir / "sms_spam_collection_5572.csv", for_training=True)
    texts, labels, sources, _ = dedupe(examples)
    train, val, test = split_indices(labels, sources, config)
    background = background_texts(config)
    train_texts = [texts[i] for i in train] + background
    train_labels = [labels[i] for i in train] + [0] * len(background)
    val_texts, val_labels = [texts[i] for i in val], [labels[i] for i in val]
    enron_test = [i for i in test if sources[i].startswith("enron_spam_6subsets/")]
    eval_examples = load_eval_examples(args.data_dir / "eval_nazario_phish_vs_spamassassin_easyham.csv.gz")
    emails = typical_emails(500)
    analyzer: Any = functools.partial(featurize, ngram_max=config.ngram_max)

    full = fit(train_texts, train_labels, replace(config, prune_to=0, weight_bits=0))
    bases: list[tuple[str, Fitted]] = [("full", full)]
    order = np.argsort(-np.abs(full.weights), kind="stable")
    for k in args.prune:
        if k < len(full.terms):
            vocab = sorted(full.terms[i] for i in order[:k])
            bases.append(
                (
                    f"pruned {k // 1000}k",
                    _quantise(_fit_vocabulary(train_texts, train_labels, config, vocab, analyzer), 0),
                )
            )

    results = []
    for base_name, base in bases:
        reference = None
        for bits in (0, 16, 8):
            fitted = _quantise(copy.deepcopy(base), bits) if bits else base
            name = base_name + ("" if not bits else f" + int{bits}")
            threshold = choose_threshold(val_labels, fitted.sk_scores(val_texts), config)
            out = args.out_dir / name.replace(" ", "_").replace("+", "")
            meta = {
                "name": MODEL_NAME,
                "version": "variant",
                "created_at": "variant",
                "threshold": threshold,
                "model_file": MODEL_FILE,
                "metrics": {},
            }
            clf = write_artifact(out, export_model(fitted), meta)
            scores = np.asarray(clf.score_many([texts[i] for i in enron_test]))
            if reference is None:
                reference = scores
            timing = bench(out, emails, args.calls, 3)
            ev = evaluate_examples(clf, eval_examples)
            result = {
                "variant": name,
                "terms": len(fitted.terms),
                "artifact_mb": round(int(timing["artifact_bytes"]) / 2**20, 2),  # type: ignore[call-overload]
                "load_ms": timing["load_ms_median"],
                "p50_ms": timing["p50_ms"],
                "p99_ms": timing["p99_ms"],
                "heldout_enron_f1": binary_metrics([labels[i] for i in enron_test], scores, threshold)["f1"],
                "eval_precision": ev["precision"],
                "eval_recall": ev["recall"],
                "eval_f1": ev["f1"],
                "eval_auc": ev["roc_auc"],
                "max_abs_score_diff_vs_float": float(np.max(np.abs(scores - reference))),
                "threshold": round(threshold, 4),
            }
            print(json.dumps(result), flush=True)
            results.append(result)
    cols = [
        "terms",
        "artifact_mb",
        "load_ms",
        "p50_ms",
        "p99_ms",
        "heldout_enron_f1",
        "eval_precision",
        "eval_f1",
    ]
    print("\n| variant | " + " | ".join(cols) + " | max Δscore |")
    print("|---|" + "---|" * (len(cols) + 1))
    for r in results:
        print(
            f"| {r['variant']} | "
            + " | ".join(str(r[c]) for c in cols)
            + f" | {r['max_abs_score_diff_vs_float']:.1e} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
