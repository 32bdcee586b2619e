"""The custom search attributes the project's code uses, read from the code itself: every
`SearchAttributeKey.for_<type>(NAME)` in the packages a deployment runs. The deployment
tests check that each dev server and each setup step registers every one of them."""

from __future__ import annotations

import ast
from itertools import pairwise
from pathlib import Path

from research_shared import names

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "services", "cli")
# The server's name of each type, as `--search-attribute NAME=TYPE` and
# `temporal operator search-attribute create --type TYPE` spell it.
SERVER_TYPES = {
    "for_keyword": "Keyword",
    "for_text": "Text",
    "for_int": "Int",
    "for_float": "Double",
    "for_bool": "Bool",
    "for_datetime": "Datetime",
    "for_keyword_list": "KeywordList",
}


def _name_of(node: ast.expr, where: str) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    constant = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
    value = getattr(names, constant, None) if constant else None
    if not isinstance(value, str):
        raise AssertionError(
            f"{where}: a search attribute's name must be a literal or a constant of "
            f"research_shared.names, so the deployments can be checked: {ast.unparse(node)}"
        )
    return value


def search_attributes_in_code() -> dict[str, str]:
    """Every custom search attribute the code declares: its name -> the server's type."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in SERVER_TYPES
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "SearchAttributeKey"
                ):
                    continue
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                found[_name_of(node.args[0], where)] = SERVER_TYPES[node.func.attr]
    return found


def registered_by_flags(args: list[str]) -> dict[str, str]:
    """What `temporal server start-dev ... --search-attribute NAME=TYPE ...` registers."""
    registered: dict[str, str] = {}
    for flag, value in pairwise(args):
        if flag == "--search-attribute":
            name, _, kind = value.partition("=")
            registered[name] = kind
    return registered
