"""Enough of PromQL to find what an expression reads: its series selectors, their label
matchers, and the labels it groups or matches by. Not a full parser: it knows the grammar of
selectors, matchers, function calls and aggregation and vector-matching clauses, which is
what the dashboard and the alert rules use."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

AGGREGATIONS = frozenset(
    [
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
    ]
)
FUNCTIONS = AGGREGATIONS | frozenset(
    [
        "abs",
        "absent",
        "absent_over_time",
        "ceil",
        "changes",
        "clamp",
        "clamp_max",
        "clamp_min",
        "delta",
        "deriv",
        "exp",
        "floor",
        "histogram_quantile",
        "histogram_fraction",
        "idelta",
        "increase",
        "irate",
        "label_join",
        "label_replace",
        "ln",
        "log2",
        "log10",
        "predict_linear",
        "rate",
        "resets",
        "round",
        "scalar",
        "sgn",
        "sort",
        "sort_desc",
        "sqrt",
        "time",
        "timestamp",
        "vector",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "sum_over_time",
        "count_over_time",
        "quantile_over_time",
        "last_over_time",
        "present_over_time",
    ]
)
MODIFIERS = frozenset(["by", "without", "on", "ignoring", "group_left", "group_right"])
KEYWORDS = frozenset(["and", "or", "unless", "bool", "offset"])

TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<range>\[[^\]]*\])
  | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?[a-z]*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>==|!=|=~|!~|>=|<=|[-+*/%^<>=(),{}])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Selector:
    """One series selector: a metric name and its label matchers (label, op, value)."""

    metric: str
    matchers: tuple[tuple[str, str, str], ...]


@dataclass
class Query:
    """What a PromQL expression reads: its selectors and the labels it groups or matches by."""

    selectors: list[Selector] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)


def tokenize(expr: str) -> list[tuple[str, str]]:
    """PromQL as (kind, text) tokens; a range or subquery `[...]` is one token."""
    tokens: list[tuple[str, str]] = []
    at = 0
    while at < len(expr):
        match = TOKEN.match(expr, at)
        if match is None:
            raise ValueError(f"cannot read PromQL at {expr[at : at + 20]!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append((kind, match.group()))
        at = match.end()
    return tokens


def parse(expr: str) -> Query:
    """Take a PromQL expression apart; raises ValueError on what it cannot read.

    Not a full PromQL parser: it knows enough of the grammar (selectors, matchers, function
    calls, aggregation and vector-matching clauses) to find every series an expression reads.
    """
    tokens = tokenize(expr)
    query = Query()

    def at(i: int) -> tuple[str, str]:
        return tokens[i] if i < len(tokens) else ("end", "")

    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        if kind == "op" and text == "{":
            raise ValueError("a selector without a metric name")
        if kind != "ident":
            i += 1
            continue
        if text in MODIFIERS:
            i += 1
            if at(i) == ("op", "("):
                i += 1
                while at(i) != ("op", ")"):
                    label_kind, label = at(i)
                    if label_kind == "ident":
                        query.grouping.add(label)
                    elif at(i) != ("op", ","):
                        raise ValueError(f"unexpected {label!r} in the labels of {text}")
                    i += 1
                i += 1
            continue
        if text in KEYWORDS:
            i += 1
            continue
        following = at(i + 1)
        if following == ("op", "(") or (
            text in AGGREGATIONS and following[0] == "ident" and following[1] in MODIFIERS
        ):
            if text not in FUNCTIONS:
                raise ValueError(f"unknown function {text!r}")
            i += 1
            continue
        i += 1
        matchers: list[tuple[str, str, str]] = []
        if at(i) == ("op", "{"):
            i += 1
            while at(i) != ("op", "}"):
                if at(i) == ("op", ","):
                    i += 1
                    continue
                (label_kind, label), (op_kind, op), (value_kind, value) = (
                    at(i),
                    at(i + 1),
                    at(i + 2),
                )
                if (label_kind, op_kind, value_kind) != ("ident", "op", "string"):
                    raise ValueError(f"cannot read the matcher at {label!r} in {text}")
                if op not in ("=", "!=", "=~", "!~"):
                    raise ValueError(f"{op!r} is no label matcher")
                matchers.append((label, op, value[1:-1].replace('\\"', '"')))
                i += 3
            i += 1
        query.selectors.append(Selector(text, tuple(matchers)))
    return query


def selector_text(selector: Selector) -> str:
    """A selector written back as PromQL: `name{label="value", ...}`."""
    if not selector.matchers:
        return selector.metric
    matchers = ", ".join(
        f'{label}{op}"{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for label, op, value in selector.matchers
    )
    return f"{selector.metric}{{{matchers}}}"
