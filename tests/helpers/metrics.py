"""Reading a /metrics endpoint, through prometheus_client's own text parser."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

# A series: its name as exposed, and its labels.
Series = tuple[str, frozenset[tuple[str, str]]]


def scrape(port: int, timeout: float = 10.0) -> str:
    """The text a /metrics endpoint on this machine serves."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as answer:
        text: str = answer.read().decode()
    return text


def parse_samples(text: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition, named as it is exposed.

    The parser gives a counter's samples the OpenMetrics name, ending in `_total`, even when
    the exposition has no such suffix (the Temporal SDK's counters). Prometheus stores, and
    the dashboards query, the name as exposed, so that is the name given back here: the
    family's TYPE line says which it was.
    """
    found: list[Sample] = []
    for family in text_string_to_metric_families(text):
        unsuffixed = family.type == "counter" and f"# TYPE {family.name} counter\n" in text
        for sample in family.samples:
            if unsuffixed:
                sample = sample._replace(name=sample.name.removesuffix("_total"))
            found.append(sample)
    return found


def series(name: str, **labels: str) -> Series:
    """The key of one series in `values`."""
    return name, frozenset(labels.items())


def values(text: str) -> dict[Series, float]:
    """The value of each series of an exposition."""
    return {series(s.name, **s.labels): s.value for s in parse_samples(text)}


def label_names(text: str) -> dict[str, set[str]]:
    """Each series name of an exposition, with the label names seen on it (a histogram's
    bucket bound `le` aside)."""
    found: dict[str, set[str]] = {}
    for sample in parse_samples(text):
        found.setdefault(sample.name, set()).update(set(sample.labels) - {"le"})
    return found
