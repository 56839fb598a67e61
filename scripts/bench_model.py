"""Benchmark the serving path of model artifact(s): load time and in-process latency per e-mail.

    uv run --project service python scripts/bench_model.py [--model runtime/model ...] [--calls 5000]

Prints one JSON object per artifact: artifact size, load time (median and max of --loads fresh
loads, checksums included), and the p50 / p99 / mean latency of `ScamClassifier.score` on typical
~2 KB e-mails: steady state (cycling through the e-mails) and the first time each e-mail is seen
(after 200 warm-up e-mails); and e-mails per second scoring the same e-mails one per call and 32
per call (`score_many`, one numpy pass per call). The e-mails are real ones from ../shared/data
(1.8-2.2 KB texts of both classes) when the data is there, else generated text of the same size.
`--compare-reference N` adds N interleaved rounds of the scorer with the serving normaliser vs
`normalize_reference` (the same output, computed the plain way), the fair way to see what the fast
path buys on a noisy machine. `--compare-revision REV` times this checkout's scorer against the one
of REV (e.g. before a change to runtime/classifier.py) the same way, one e-mail and 32 per call.
"""

from __future__ import annotations

import argparse
import csv
import gc
import gzip
import importlib.util
import json
import pathlib
import random
import statistics
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import runtime.classifier as classifier_module
from runtime.classifier import DEFAULT_MODEL_DIR, ScamClassifier
from runtime.text import normalize_reference

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def typical_emails(n: int, seed: int = 7) -> list[str]:
    """~2 KB e-mails: real ones when the shared data is present, otherwise synthetic."""
    rng = random.Random(seed)  # noqa: S311 - benchmark sampling, not crypto
    texts: list[str] = []
    source = DATA / "eval_nazario_phish_vs_spamassassin_easyham.csv.gz"
    enron = DATA / "enron_spam_6subsets.csv.gz"
    csv.field_size_limit(10**9)
    for path in (source, enron):
        if path.is_file():
            with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
                texts += [r["text"] for r in csv.DictReader(fh) if 1800 <= len(r["text"]) <= 2200]
    if not texts:
        words = [
            "account",
            "verify",
            "please",
            "meeting",
            "tomorrow",
            "report",
            "click",
            "here",
            "free",
            "offer",
            "the",
            "and",
            "of",
            "to",
        ]
        texts = [" ".join(rng.choice(words) for _ in range(330))[:2048] for _ in range(n)]
    rng.shuffle(texts)
    return texts[:n]


def _timed(clf: ScamClassifier, emails: list[str], calls: int) -> list[int]:
    """Sorted nanoseconds of `calls` single-e-mail scores, cycling through `emails`."""
    latencies = []
    gc.disable()
    try:
        for i in range(calls):
            text = emails[i % len(emails)]
            started = time.perf_counter_ns()
            clf.score(text)
            latencies.append(time.perf_counter_ns() - started)
    finally:
        gc.enable()
    return sorted(latencies)


def compare_normalisers(clf: ScamClassifier, emails: list[str], rounds: int) -> dict[str, float]:
    """The scorer with the serving normaliser vs the reference definition (same output), interleaved
    e-mail by e-mail so that both see the same machine noise: what the fast path buys in situ."""
    fast = classifier_module.normalize
    latencies: dict[str, list[int]] = {"fast": [], "reference": []}
    arms = (("fast", fast), ("reference", normalize_reference))
    gc.disable()
    try:
        for r in range(rounds):
            for i, text in enumerate(emails):
                for name, normalizer in arms if (i + r) % 2 else arms[::-1]:
                    classifier_module.normalize = normalizer
                    started = time.perf_counter_ns()
                    clf.score(text)
                    latencies[name].append(time.perf_counter_ns() - started)
    finally:
        classifier_module.normalize = fast
        gc.enable()
    out: dict[str, float] = {}
    for name, values in latencies.items():
        values.sort()
        out[f"{name}_p50_ms"] = round(values[len(values) // 2] / 1e6, 4)
        out[f"{name}_p99_ms"] = round(values[int(len(values) * 0.99)] / 1e6, 4)
    return out


def bench(model_dir: pathlib.Path, emails: list[str], calls: int, loads: int) -> dict[str, object]:
    load_times = []
    clf = None
    for _ in range(loads):
        gc.collect()
        started = time.perf_counter()
        clf = ScamClassifier.load(model_dir)
        load_times.append(time.perf_counter() - started)
    assert clf is not None
    warm_up, emails = emails[:200], emails[200:]
    for text in warm_up:
        clf.score(text)
    # First sight of each e-mail: the normaliser's per-word memo holds only what the warm-up taught
    # it (like a server that has seen a few hundred mails); then the steady state over repeats.
    first_seen = _timed(clf, emails, len(emails))
    latencies = _timed(clf, emails, calls)
    batch = emails[:256]
    started = time.perf_counter()
    clf.score_many(batch)
    batch_seconds = time.perf_counter() - started
    # The same e-mails one call each and in calls of 32 (one numpy pass per call), interleaved.
    emails_32 = emails[: len(emails) // 32 * 32]
    one_by_one, by_32 = [], []
    for _ in range(3):
        one_by_one.append(_seconds_one_by_one(clf, emails_32))
        by_32.append(_seconds_by_32(clf, emails_32))
    scored = len(emails_32)
    size = sum(p.stat().st_size for p in model_dir.iterdir() if p.is_file())
    return {
        "model": str(model_dir),
        "version": clf.info.version,
        "artifact_bytes": size,
        "load_ms_median": round(statistics.median(load_times) * 1e3, 2),
        "load_ms_max": round(max(load_times) * 1e3, 2),
        "email_chars_mean": round(statistics.mean(len(e) for e in emails)),
        "calls": calls,
        "p50_ms": round(latencies[len(latencies) // 2] / 1e6, 4),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] / 1e6, 4),
        "mean_ms": round(statistics.mean(latencies) / 1e6, 4),
        "first_seen_p50_ms": round(first_seen[len(first_seen) // 2] / 1e6, 4),
        "first_seen_p99_ms": round(first_seen[int(len(first_seen) * 0.99)] / 1e6, 4),
        "batch256_emails_per_s": round(len(batch) / batch_seconds),
        "single_calls_emails_per_s": round(scored / statistics.median(one_by_one)),
        "batch32_calls_emails_per_s": round(scored / statistics.median(by_32)),
    }


def _seconds_one_by_one(clf: Any, emails: list[str]) -> float:
    started = time.perf_counter()
    for text in emails:
        clf.score(text)
    return time.perf_counter() - started


def _seconds_by_32(clf: Any, emails: list[str]) -> float:
    started = time.perf_counter()
    for k in range(0, len(emails), 32):
        clf.score_many(emails[k : k + 32])
    return time.perf_counter() - started


def compare_revision(
    revision: str, model_dir: pathlib.Path, emails: list[str], rounds: int
) -> dict[str, object]:
    """The scorer of this checkout against `revision`'s `runtime/classifier.py`, in one process on
    the same e-mails, alternating which goes first: median speed-up (theirs / ours in time) of one
    e-mail per call and of 32 per call, with the range over the rounds."""
    source = subprocess.run(  # noqa: S603 - fixed argv
        ["git", "-C", str(REPO), "show", f"{revision}:runtime/classifier.py"],  # noqa: S607
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    spec = importlib.util.spec_from_loader(f"classifier_at_{revision}", loader=None)
    assert spec is not None
    theirs_module = importlib.util.module_from_spec(spec)
    theirs_module.__file__ = str(REPO / "runtime" / "classifier.py")  # (its default model directory)
    sys.modules[spec.name] = theirs_module  # dataclasses look their module up there
    exec(compile(source, f"{revision}:runtime/classifier.py", "exec"), theirs_module.__dict__)  # noqa: S102
    ours, theirs = ScamClassifier.load(model_dir), theirs_module.ScamClassifier.load(model_dir)
    emails_32 = emails[: len(emails) // 32 * 32]
    out: dict[str, object] = {"revision": revision, "rounds": rounds}
    gc.disable()
    try:
        for name, timed in (("single", _seconds_one_by_one), ("batch32", _seconds_by_32)):
            ratios = []
            for r in range(rounds):
                if r % 2:
                    mine, other = timed(ours, emails_32), timed(theirs, emails_32)
                else:
                    other, mine = timed(theirs, emails_32), timed(ours, emails_32)
                ratios.append(other / mine)
            out[f"{name}_speedup_median"] = round(statistics.median(ratios), 3)
            out[f"{name}_speedup_range"] = [round(min(ratios), 2), round(max(ratios), 2)]
    finally:
        gc.enable()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--model", type=pathlib.Path, action="append", help="artifact dir (repeatable)")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--emails", type=int, default=1200, help="200 warm up, the rest are timed")
    parser.add_argument(
        "--compare-reference",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="also time the scorer with normalize_reference, interleaved with the fast path",
    )
    parser.add_argument(
        "--compare-revision",
        metavar="REV",
        help="also time this checkout's scorer against REV's runtime/classifier.py, interleaved",
    )
    parser.add_argument("--rounds", type=int, default=21, help="rounds of --compare-revision")
    args = parser.parse_args()
    emails = typical_emails(args.emails)
    for model_dir in args.model or [DEFAULT_MODEL_DIR]:
        print(json.dumps(bench(model_dir, emails, args.calls, args.loads)), flush=True)
        if args.compare_reference:
            clf = ScamClassifier.load(model_dir)
            comparison = compare_normalisers(clf, emails[200:], args.compare_reference)
            print(json.dumps({"model": str(model_dir), **comparison}), flush=True)
        if args.compare_revision:
            comparison = compare_revision(args.compare_revision, model_dir, emails[200:], args.rounds)
            print(json.dumps({"model": str(model_dir), **comparison}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
