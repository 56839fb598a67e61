"""Cost of normalising hostile texts against an ordinary HTML e-mail of the same size (20 KB).

    uv run --project service python scripts/bench_adversarial.py [--rounds 7]

Prints each text's best-of-N time and its ratio to the ordinary e-mail, and the time of a batch of 64
of the worst (the largest batch the API accepts by default): before the HTML patterns were made
linear, one such text took 1-2 s and a batch of them over a minute.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from runtime.text import normalize
from tests.runtime.adversarial_texts import adversarial, best_seconds, ordinary_html


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    baseline = best_seconds(normalize, ordinary_html(), args.rounds)
    print(f"{'text (20 KB)':<32} {'ms':>8} {'x ordinary':>11}")
    print(f"{'ordinary HTML e-mail':<32} {baseline * 1000:8.2f} {1.0:11.2f}")
    worst_name, worst = "", 0.0
    texts = adversarial()
    for name, text in texts.items():
        seconds = best_seconds(normalize, text, args.rounds)
        if seconds > worst:
            worst_name, worst = name, seconds
        print(f"{name:<32} {seconds * 1000:8.2f} {seconds / baseline:11.2f}")
    started = time.perf_counter()
    for _ in range(64):
        normalize(texts[worst_name])
    print(f"batch of 64 x {worst_name!r}: {time.perf_counter() - started:.3f} s of one core")


if __name__ == "__main__":
    main()
