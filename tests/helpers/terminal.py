"""A command run with a pseudo-terminal as its terminal, answering its prompts as a person at
the keyboard would."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path


def run_at_a_terminal(
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    answers: list[tuple[str, str]],
    within: float = 180.0,
) -> tuple[int | None, str, int]:
    """Run `argv` on a pty (stdin, stdout and stderr); each time the output shows the next
    prompt of `answers`, type its answer. Returns the exit code (None if it had to be
    killed), everything it wrote, and how many prompts were answered."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        argv, stdin=follower, stdout=follower, stderr=follower, cwd=cwd, env=env
    )
    os.close(follower)
    seen = b""
    searched_from = 0
    answered = 0
    deadline = time.monotonic() + within
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break  # the command closed the terminal: it has ended
            seen += chunk
            while answered < len(answers):
                prompt, answer = answers[answered]
                at = seen.find(prompt.encode(), searched_from)
                if at < 0:
                    break
                os.write(leader, answer.encode() + b"\n")
                searched_from = at + len(prompt)
                answered += 1
        try:
            code: int | None = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
        seen += _rest(leader)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    return code, seen.decode(errors="replace"), answered


def _rest(leader: int) -> bytes:
    """What the command wrote that was not read yet."""
    rest = b""
    while select.select([leader], [], [], 0.2)[0]:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        rest += chunk
    return rest
