"""Text a person gives `deep-research` is checked at the door: bytes that are not UTF-8 and
control characters are one line and exit 2, before anything starts or is sent.

The commands run against an address where nothing listens: a check that came after
connecting would say "cannot reach Temporal" (exit 1) instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from research_cli.embedded import free_port

NOT_UTF8 = b"asyncio \xff threads"
ESCAPE = b"red \x1b[31m text"
NOT_UTF8_PROBLEM = "is not valid UTF-8 text (byte 0xff)"
ESCAPE_PROBLEM = "contains the control character U+001B (only newline and tab may appear in text)"


def deep_research(*args: str | bytes, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real command, with arguments given as the bytes a shell would pass."""
    env = {**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    argv = [os.fsencode(a) if isinstance(a, str) else a for a in args]
    return subprocess.run(
        [os.fsencode(sys.executable), b"-m", b"research_cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def assert_refused(result: subprocess.CompletedProcess[str], line: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"error: {line}\n"
    assert result.stdout == ""


# (where the text goes on the command line, how the error names it)
TEXT_ARGUMENTS: list[tuple[tuple[str, ...], str]] = [
    (("run",), "research request: question"),
    (("answer", "some-run", "fine"), "answer 2"),
    (("approve", "some-run", "--reject"), "--reject reason"),
    (("approve", "some-run", "--add"), "--add query"),
    (("approve", "some-run", "--replace", "0"), "--replace query for 0"),
    (("cancel", "some-run", "--reason"), "--reason"),
    (("status",), "workflow id"),
    (("run", "a question", "--fairness-key"), "--fairness-key"),
]


@pytest.mark.parametrize(("before", "what"), TEXT_ARGUMENTS, ids=[w for _, w in TEXT_ARGUMENTS])
@pytest.mark.parametrize(
    ("text", "problem"),
    [(NOT_UTF8, NOT_UTF8_PROBLEM), (ESCAPE, ESCAPE_PROBLEM)],
    ids=["not-utf8", "control"],
)
def test_bad_text_is_one_line_before_anything_is_sent(
    before: tuple[str, ...], what: str, text: bytes, problem: str
) -> None:
    assert_refused(deep_research(*before, text), f"invalid {what}: {problem}")


def test_demo_refuses_bad_text_before_starting_anything(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = deep_research("demo", NOT_UTF8, "--data-dir", str(data_dir), cwd=tmp_path)
    assert_refused(result, f"invalid research request: question: {NOT_UTF8_PROBLEM}")
    assert not data_dir.exists()


def test_nul_is_refused() -> None:
    """No command line can carry NUL (exec takes C strings), so `main` gets it directly,
    as it would from a program that calls it."""
    code = (
        "import sys; from research_cli.main import main; "
        "sys.exit(main(['answer', 'some-run', 'a\\x00b']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "error: invalid answer 1: contains the control character U+0000 "
        "(only newline and tab may appear in text)\n"
    )


def test_newline_and_tab_are_text() -> None:
    """They pass the check, so the command goes on to connect (and finds nothing there)."""
    result = deep_research("run", "Which is faster:\n\tasyncio or threads?")
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: cannot reach Temporal at 127.0.0.1:")
    assert result.stderr.count("\n") == 1


def test_a_fairness_key_beyond_temporals_limit_is_one_line() -> None:
    result = deep_research("run", "a question", "--fairness-key", "k" * 65)
    assert_refused(
        result,
        "invalid research request: fairness_key: the fairness key has 65 characters; "
        "the limit is 64",
    )


def test_replace_needs_a_query_number() -> None:
    result = deep_research("approve", "some-run", "--replace", "abc", "a better query")
    assert_refused(result, "invalid --replace: the query number must be a whole number, not 'abc'")
