"""What the README promises about errors is what the code does."""

from __future__ import annotations

import re
from pathlib import Path

from research_shared import errors
from research_shared.provider_errors import from_http_status

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


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
