"""The external tools some tests run for real, found on PATH; a missing tool fails the test
with how to get it (`bash scripts/test.sh` installs each when it is missing)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

HOW_TO_INSTALL = {
    "prometheus": "Debian's `prometheus` package: apt-get install prometheus",
    "promtool": "Debian's `prometheus` package: apt-get install prometheus",
    "kubectl": "a pinned kubectl in .tools/bin",
    "check-jsonschema": "the check-jsonschema package of requirements/dev.txt",
}


def require(tool: str) -> str:
    """The path of `tool` (on PATH, or beside this interpreter for the tools that come with
    the locked Python packages); fails the calling test when it is not installed."""
    found = shutil.which(tool) or shutil.which(tool, path=str(Path(sys.executable).parent))
    if found is None:
        how = HOW_TO_INSTALL.get(tool, "see scripts/test.sh")
        pytest.fail(f"{tool} is not on PATH; bash scripts/test.sh installs it ({how})")
    return found
