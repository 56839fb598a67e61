"""Hostile inputs for the text normalisation: texts built to make a pattern scan far ahead of every
"<", which cost seconds per 20 KB text before the HTML stripping was made linear. Shared by the test
that bounds their cost (tests/runtime/test_text.py) and the benchmark that prints it
(scripts/bench_adversarial.py). Test data, so it lives beside the tests, not in the image."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

SIZE = 20_000  # characters: SCAMGUARD_MAX_TEXT_CHARS' default, the longest text the API accepts

ADVERSARIAL = {
    "unclosed anchors": "<p>" + "<a x " * SIZE,
    "unclosed anchors with href": "<p>" + "<a href=x " * SIZE,
    "unclosed script": "<p>" + "<script " * SIZE,
    "unclosed comments": "<p>" + "<!-- " * SIZE,
    "unclosed tags": "<p>" + "<b " * SIZE,
    "tags inside a tag": "<p><a " + "<b <i " * SIZE + ">",
    # runs of one mark that span words, two marks alternating: the most runs per kilobyte
    "punctuation runs across words": "- - + + " * SIZE,
}


def adversarial(size: int = SIZE) -> dict[str, str]:
    return {name: text[:size] for name, text in ADVERSARIAL.items()}


def ordinary_html(size: int = SIZE) -> str:
    """A normal HTML e-mail of about `size` characters (paragraphs, links, a style block)."""
    paragraph = (
        "<p>Dear customer, your <b>invoice</b> for October is attached. Please review it at "
        '<a href="https://billing.example.com/invoices/2024-10">our billing portal</a> and contact '
        "support if anything looks wrong.</p>\n"
    )
    head = "<html><head><style>p { margin: 0 }</style></head><body>"
    body = paragraph * (size // len(paragraph) + 1)
    return (head + body)[: size - len("</body></html>")] + "</body></html>"


def best_seconds(function: Callable[[str], object], text: str, rounds: int = 7) -> float:
    """The fastest of `rounds` calls: the least noisy figure of a CPU-bound call."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        function(text)
        best = min(best, time.perf_counter() - started)
    return best


def paired_ratio(
    function: Callable[[str], object], text: str, reference: str, rounds: int = 9, calls: int = 3
) -> float:
    """The median over `rounds` of (best of `calls` on `text`) / (best of `calls` on `reference`),
    the two timed back to back in each round: drift of the machine's speed between the two
    measurements (on a shared VM, tens of percent within seconds) cannot bias the ratio."""
    ratios = [
        best_seconds(function, text, calls) / best_seconds(function, reference, calls) for _ in range(rounds)
    ]
    return statistics.median(ratios)
