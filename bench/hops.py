"""What one sequential step costs on the dev server: the embedded server's settings against
the same server with the history service's default task queue read rates.

A workflow runs `--steps` no-op activities one after another on its own queue, so each step
is two hops through the server: the activity (handed to the worker eagerly, in the answer to
the workflow task that scheduled it) and the workflow task that its completion schedules.
For each server this script starts the server (`dev_server_spec`, the one the embedded stack
and `run_bench.py` use, or the same without `QUEUE_READ_RATES`), starts a worker in this
process, runs `--warmup` executions and then `--runs` timed ones, one at a time, and prints
the median time per execution and per step, and the median wait of a workflow task between
scheduled and started, read from the histories. The servers alternate for `--rounds`
rounds, each started fresh, so neither one's history or the other's load is measured twice.

    python bench/hops.py [--steps 10] [--runs 8] [--warmup 2] [--rounds 3] [--json]

No figure is asserted; docs/benchmarks.md has them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from research_cli.embedded import (
    QUEUE_READ_RATES,
    EmbeddedError,
    dev_server_spec,
    free_port,
    wait_for_server,
)
from research_cli.supervisor import ProcessSpec, spawn, stop_process

SERVERS = ("embedded", "default read rates")


@activity.defn
async def noop() -> None:
    return None


@workflow.defn(sandboxed=False)
class Steps:
    @workflow.run
    async def run(self, steps: int) -> None:
        for _ in range(steps):
            await workflow.execute_activity(noop, start_to_close_timeout=timedelta(seconds=30))


def server_spec(server: str, folder: Path, port: int) -> ProcessSpec:
    rates = QUEUE_READ_RATES if server == "embedded" else ()
    log = folder / "temporal.log"
    return dev_server_spec(folder / "temporal.db", port, log_file=log, queue_read_rates=rates)


async def task_waits(client: Client, workflow_id: str) -> list[float]:
    """Each workflow task's wait between scheduled and started, in ms."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    scheduled = None
    waits = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            scheduled = event.event_time.ToDatetime()
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and scheduled:
            waits.append((event.event_time.ToDatetime() - scheduled).total_seconds() * 1000)
    return waits


async def measure(server: str, args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-hops-"))
    port = free_port()
    process = spawn(server_spec(server, folder, port))
    try:
        client = await wait_for_server(f"127.0.0.1:{port}", process=process)
        queue = f"hops-{uuid.uuid4().hex[:8]}"
        times, waits = [], []
        async with Worker(client, task_queue=queue, workflows=[Steps], activities=[noop]):
            for index in range(args.warmup + args.runs):
                workflow_id = f"hops-{uuid.uuid4().hex}"
                started = time.perf_counter()
                await client.execute_workflow(
                    Steps.run, args.steps, id=workflow_id, task_queue=queue
                )
                if index >= args.warmup:
                    times.append((time.perf_counter() - started) * 1000)
                    waits += await task_waits(client, workflow_id)
    finally:
        stop_process(process)
        shutil.rmtree(folder, ignore_errors=True)
    execution = statistics.median(times)
    return {
        "server": server,
        "execution_ms": round(execution, 1),
        "step_ms": round(execution / args.steps, 1),
        "workflow_task_wait_ms": round(statistics.median(waits), 1),
    }


async def main(args: argparse.Namespace) -> int:
    rounds = []
    for number in range(args.rounds):
        order = SERVERS if number % 2 == 0 else SERVERS[::-1]
        rounds += [await measure(server, args) for server in order]
    if args.json:
        print(json.dumps(rounds, indent=2))
        return 0
    print(
        f"{args.steps} sequential no-op activities, median of {args.runs} executions "
        f"after {args.warmup}, each server started fresh"
    )
    print(f"{'server':<20} {'execution ms':>12} {'per step ms':>12} {'task wait ms':>12}")
    for row in rounds:
        print(
            f"{row['server']:<20} {row['execution_ms']:>12.1f} {row['step_ms']:>12.1f} "
            f"{row['workflow_task_wait_ms']:>12.1f}"
        )
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="activities a run (default 10)")
    parser.add_argument("--runs", type=int, default=8, help="timed executions (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="of both servers (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if min(args.steps, args.runs, args.rounds) < 1 or args.warmup < 0:
        # One line, as bench/store_floor.py says it: argparse's own would add the usage.
        print(
            "error: --steps, --runs and --rounds must be at least 1, --warmup at least 0",
            file=sys.stderr,
        )
        sys.exit(2)
    return args


def entrypoint() -> int:
    args = parse()
    try:
        return asyncio.run(main(args))
    except EmbeddedError as err:  # no temporal binary, or a server that never answered
        print(f"hops: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(entrypoint())
