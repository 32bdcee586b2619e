"""Where each of our pools spends its CPU: py-spy samples the running processes (no change to
them) while runs of ours go on, and the samples are summed by function and by area."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench._stack import BenchError

RATE = 100
TOP = 15
# An area is the first whose path prefix a frame's file has; py-spy shortens paths to what
# follows the import root, so these are package paths.
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Temporal workflow sandbox", ("temporalio/worker/workflow_sandbox/",)),
    ("Temporal SDK: workflow worker", ("temporalio/worker/_workflow",)),
    ("Temporal SDK: activity worker", ("temporalio/worker/_activity",)),
    ("Temporal SDK: core bridge", ("temporalio/bridge/",)),
    ("Temporal SDK: data converter", ("temporalio/converter", "temporalio/contrib")),
    ("Temporal SDK: other", ("temporalio/",)),
    ("protobuf", ("google/protobuf/",)),
    ("Agents SDK", ("agents/",)),
    ("openai client", ("openai/",)),
    ("tavily-python", ("tavily/",)),
    (
        "HTTP (httpx, httpcore, h11, anyio)",
        ("httpx/", "httpx2/", "httpcore/", "httpcore2/", "h11/", "anyio/"),
    ),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("logging (structlog, logging)", ("structlog/", "logging/")),
    ("encryption", ("cryptography/", "research_shared/encryption")),
    (
        "payload store and records",
        ("research_shared/store/", "research_shared/recorded_calls", "research_shared/audit"),
    ),
    ("prometheus_client", ("prometheus_client/",)),
    ("our code, other", ("research_",)),
    ("json", ("json/",)),
    ("thread pool (file writes, to_thread)", ("concurrent/futures/", "threading.py")),
    ("imports", ("<frozen importlib", "importlib/")),
    ("event loop (asyncio, selectors)", ("asyncio/", "selectors.py")),
)
# Areas nearly every stack passes through (the event loop runs everything): left out of the
# inclusive shares, where they would say nothing.
CATCH_ALL = ("event loop (asyncio, selectors)", "our code, other", "other")
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]*)(?::\d+)?\)$")


def py_spy() -> str:
    """The py-spy beside this interpreter (the dev lock installs it), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise BenchError("py-spy is not installed: `make install` (the dev lock has it)")
    return found


async def record(pid: int, seconds: float, output: Path) -> None:
    """Sample `pid` for `seconds` into `output` (py-spy's raw, collapsed-stack format)."""
    proc = await asyncio.create_subprocess_exec(
        py_spy(),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(RATE),
        "--format",
        "raw",
        "--output",
        str(output),
        # Reads the process's memory without pausing it: the runs go on undisturbed.
        "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    if proc.returncode != 0 or not await asyncio.to_thread(output.exists):
        text = " ".join(err.decode(errors="replace").split())[-300:]
        raise BenchError(f"py-spy could not sample process {pid}: {text}")


def area_of(file: str) -> str:
    for name, prefixes in AREAS:
        if file.startswith(prefixes):
            return name
    return "other"


def _frames(stack: str) -> list[tuple[str, str]]:
    frames = []
    for part in stack.split(";"):
        match = _FRAME.match(part)
        if match:
            frames.append((match["function"], match["file"]))
        else:
            frames.append((part, ""))
    return frames


def summarize(raw: str) -> dict[str, Any]:
    """Busy samples by the function that was running (self), by the area it belongs to, and
    by each area anywhere on the stack (inclusive), as percentages of all busy samples."""
    own: Counter[str] = Counter()
    own_area: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        if not frames:
            continue
        samples += count
        function, file = frames[-1]
        own[f"{function} ({file})"] += count
        own_area[area_of(file)] += count
        for area in {area_of(f) for _, f in frames}:
            inclusive[area] += count

    def share(counter: Counter[str], limit: int | None = None) -> list[list[Any]]:
        return [
            [name, round(100 * count / samples, 1)] for name, count in counter.most_common(limit)
        ]

    if not samples:
        return {
            "samples": 0,
            "samples_by_area": {},
            "self": [],
            "self_by_area": [],
            "inclusive_by_area": [],
        }
    return {
        "samples": samples,
        "samples_by_area": dict(own_area),
        "self": share(own, TOP),
        "self_by_area": share(own_area),
        "inclusive_by_area": [row for row in share(inclusive) if row[0] not in CATCH_ALL],
    }


def per_run(samples_by_area: dict[str, int], runs: int) -> dict[str, float]:
    """Each area's sampled time in ms per run: a busy sample stands for 1/RATE s of a
    thread running there."""
    return {
        area: round(count * 1000 / RATE / runs, 2)
        for area, count in sorted(samples_by_area.items(), key=lambda item: -item[1])
    }


def side_by_side(by_kind: dict[str, dict[str, float]]) -> list[list[Any]]:
    """Rows of [area, floor ms, ours ms, ours - floor] per run, the largest extra first,
    then the pool's total."""
    floor, ours = by_kind["floor"], by_kind["ours"]
    extras = sorted(
        ((area, floor.get(area, 0.0), ours.get(area, 0.0)) for area in set(floor) | set(ours)),
        key=lambda row: (row[1] - row[2], row[0]),
    )
    rows = [*extras, ("total", sum(floor.values()), sum(ours.values()))]
    return [[area, round(f, 1), round(o, 1), round(o - f, 1)] for area, f, o in rows]
