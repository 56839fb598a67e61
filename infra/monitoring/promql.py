"""A small PromQL scanner: which metric names an expression reads, and inlining of recording rules.

Prometheus has no offline "parse and list selectors" command in the Debian 2.42 package, so this
scanner knows just enough of the PromQL grammar to tell metric names apart from functions,
aggregations, keywords, label names (in ``by (...)``, ``on (...)``, matchers) and durations.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

_KEYWORDS = frozenset(
    {
        # binary operators and modifiers
        "and",
        "or",
        "unless",
        "atan2",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        # aggregation operators (may be followed by "by (...)" instead of "(")
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        # number literals spelled as words
        "inf",
        "nan",
    }
)
# Keywords followed by a parenthesised list of label names, not expressions.
_LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"(?:0x[0-9A-Fa-f]+|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)[A-Za-z0-9]*")
# Grafana's built-in interval variables, replaced by a duration so that the text is valid PromQL.
_GRAFANA_VARIABLE = re.compile(r"\$(?:__[A-Za-z_]+|\{__[A-Za-z_]+\})")


@dataclass(frozen=True)
class MetricRef:
    name: str
    start: int
    end: int


def substitute_grafana_variables(expr: str, interval: str = "1m") -> str:
    """Replace ``$__rate_interval`` and friends by a fixed duration (what Grafana would do)."""
    return _GRAFANA_VARIABLE.sub(interval, expr)


def _skip_quoted(expr: str, i: int) -> int:
    quote = expr[i]
    i += 1
    while i < len(expr):
        if expr[i] == "\\" and quote != "`":
            i += 2
            continue
        if expr[i] == quote:
            return i + 1
        i += 1
    raise ValueError(f"unterminated string literal in PromQL: {expr!r}")


def _skip_block(expr: str, i: int, close: str) -> int:
    """Skip from an opening bracket to just past its closing bracket, ignoring quoted text."""
    i += 1
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            i = _skip_quoted(expr, i)
            continue
        if c == close:
            return i + 1
        i += 1
    raise ValueError(f"unbalanced {close!r} in PromQL: {expr!r}")


def _next_non_space(expr: str, i: int) -> str:
    while i < len(expr) and expr[i].isspace():
        i += 1
    return expr[i] if i < len(expr) else ""


def iter_metric_refs(expr: str) -> Iterator[MetricRef]:
    """Yield every metric-name selector of ``expr`` with its position.

    Selectors written only as ``{__name__="..."}`` are reported by name as well.
    """
    i = 0
    n = len(expr)
    while i < n:
        c = expr[i]
        if c.isspace():
            i += 1
        elif c == "#":  # comment to end of line
            end = expr.find("\n", i)
            i = n if end < 0 else end
        elif c in "\"'`":
            i = _skip_quoted(expr, i)
        elif c == "{":
            end = _skip_block(expr, i, "}")
            for m in re.finditer(r"__name__\s*=\s*\"([^\"]+)\"", expr[i:end]):
                yield MetricRef(m.group(1), i + m.start(1), i + m.end(1))
            i = end
        elif c == "[":
            i = _skip_block(expr, i, "]")
        elif c.isdigit() or (c == "." and i + 1 < n and expr[i + 1].isdigit()):
            m = _NUMBER.match(expr, i)
            i = m.end() if m else i + 1
        elif m := _IDENT.match(expr, i):
            word = m.group(0)
            i = m.end()
            lowered = word.lower()
            if lowered in _LABEL_LIST_KEYWORDS:
                # "on (a, b)" / "by (a)" — and "group_left" may stand without a list.
                j = i
                while j < n and expr[j].isspace():
                    j += 1
                if j < n and expr[j] == "(":
                    i = _skip_block(expr, j, ")")
            elif lowered in _KEYWORDS:
                continue
            elif _next_non_space(expr, i) == "(":
                continue  # a function call
            else:
                yield MetricRef(word, m.start(), m.end())
        else:
            i += 1


def metric_names(expr: str) -> set[str]:
    """The metric names an expression (rule or panel query, Grafana variables allowed) reads."""
    return {ref.name for ref in iter_metric_refs(substitute_grafana_variables(expr))}


def inline(expr: str, recorded: Mapping[str, str]) -> str:
    """Replace every use of a recorded series by its defining expression, recursively.

    Used for targets that evaluate alert conditions but not recording rules (Cloud Monitoring alert
    policies with PromQL conditions). A recorded series used with label matchers or a range cannot be
    inlined textually; that raises, so rules are written without such uses.
    """
    for _ in range(10):  # recording rules built on recording rules: a few levels at most
        refs = [r for r in iter_metric_refs(expr) if r.name in recorded]
        if not refs:
            return expr
        out: list[str] = []
        last = 0
        for ref in refs:
            follower = _next_non_space(expr, ref.end)
            if follower in ("{", "["):
                raise ValueError(
                    f"cannot inline recorded series {ref.name!r} used with {follower!r} in: {expr}"
                )
            out.append(expr[last : ref.start])
            out.append(f"({recorded[ref.name]})")
            last = ref.end
        out.append(expr[last:])
        expr = "".join(out)
    raise ValueError(f"recording rules nest too deeply (cycle?) in: {expr}")
