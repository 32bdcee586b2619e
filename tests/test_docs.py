"""What the README promises about errors is what the code does, and the docs' tables are
well-formed markdown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from research_shared import errors
from research_shared.provider_errors import from_http_status

README_PATH = Path(__file__).resolve().parents[1] / "README.md"
README = README_PATH.read_text(encoding="utf-8")


def statuses_in_readme(error_type: str) -> set[int]:
    """The HTTP statuses the README's retry paragraph lists before `error_type`."""
    paragraph = README[README.index("Provider failures are classified once") :]
    paragraph = paragraph[: paragraph.index("\n\n")]
    match = re.search(r"((?:\d{3}/)*\d{3})[^`]*?`" + error_type + "`", paragraph)
    assert match, f"the README names no statuses for {error_type}"
    return {int(s) for s in match.group(1).split("/")}


def test_readme_lists_the_non_retryable_statuses_the_mapping_uses() -> None:
    by_type: dict[str, set[int]] = {}
    for status in range(400, 600):
        error = from_http_status("P", status, detail="")
        if error.non_retryable:
            by_type.setdefault(error.type or "", set()).add(status)
    assert set(by_type) == {
        errors.PROVIDER_AUTH,
        errors.PROVIDER_BAD_REQUEST,
        errors.PROVIDER_QUOTA,
    }
    for error_type, statuses in by_type.items():
        assert statuses_in_readme(error_type) == statuses, error_type


DOCS = sorted((Path(__file__).resolve().parents[1] / "docs").glob("*.md"))


def table_cells(line: str) -> list[str]:
    """The cells of a markdown table row as GitHub splits them: at every `|` not escaped
    (inside a code span too)."""
    row = line.strip().removeprefix("|")
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row)]


def tables(text: str) -> list[list[str]]:
    """Each run of lines that start with `|`, outside fenced code blocks."""
    found: list[list[str]] = []
    current: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("|"):
            current.append(line)
            continue
        if current:
            found.append(current)
            current = []
    if current:
        found.append(current)
    return found


@pytest.mark.parametrize("path", [*DOCS, README_PATH], ids=lambda p: p.name)
def test_markdown_tables_have_a_header_and_a_separator(path: Path) -> None:
    for rows in tables(path.read_text(encoding="utf-8")):
        header = table_cells(rows[0])
        where = f"{path.name}: the table starting '{rows[0][:60]}'"
        assert not all(re.fullmatch(r":?-{3,}:?", c) for c in header), f"{where} has no header"
        assert len(rows) >= 2, f"{where} has no separator row"
        separator = table_cells(rows[1])
        assert all(re.fullmatch(r":?-{3,}:?", c) for c in separator), f"{where}: bad separator"
        for row in [rows[1], *rows[2:]]:
            assert len(table_cells(row)) == len(header), f"{where}: a row of another width: {row}"
