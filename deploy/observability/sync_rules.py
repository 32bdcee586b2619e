"""Writes prometheus/alerts.yml, the plain Prometheus rules file the compose stack loads, from
prometheus-rules.yaml (the PrometheusRule the Prometheus Operator loads), whose `spec` is a
rules file as it stands. One source for both; tests/test_observability.py fails while the
two disagree.

    python deploy/observability/sync_rules.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "prometheus-rules.yaml"
TARGET = HERE / "prometheus" / "alerts.yml"
HEADER = (
    "# Generated from ../prometheus-rules.yaml by deploy/observability/sync_rules.py: edit that\n"
    "# file, then run the script. Alert meanings and actions: docs/operations.md.\n"
)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the expressions) as literal blocks, as a person writes them."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def rendered() -> str:
    """The rules file's text, as the script writes it."""
    spec = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))["spec"]
    text = yaml.dump(spec, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    return HEADER + text


def main() -> int:
    TARGET.write_text(rendered(), encoding="utf-8")
    print(f"wrote {TARGET.relative_to(HERE.parents[1])}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
