"""The benchmark's baseline: a bare Temporal workflow of the research pipeline's shape.

`BareResearchWorkflow` does what `DeepResearchWorkflow` does with nothing inside: one `plan`
activity returns K query strings, K `web_search` activities run in parallel, one `synthesize`
activity joins their results. The activities do no work and every payload is a few bytes.

Its workers copy the real system's topology and configuration: one process hosts only the
workflow, one only `web_search`, one `plan` and `synthesize`, each on its own task queue,
with the same data converter, retry presets, worker settings (RESEARCH_*), logging and
shutdown handling. So the difference between a real run and a bare run is the pipeline's
own work: searching the corpus, the offline model, the size of the payloads and their
validation, not the number of processes or queue hops.

Run a pool (the benchmark starts all three):

    python bench/bare.py worker orchestrator|search|llm

TEMPORAL_ADDRESS names the server (TEMPORAL_* as for the real workers); --queue, else
BENCH_BARE_ORCHESTRATOR_QUEUE, BENCH_BARE_SEARCH_QUEUE or BENCH_BARE_LLM_QUEUE, the pool's
queue. A run's input names the search and LLM queues, so the workflow needs no routing state.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from research_shared import retry

BARE_WORKFLOW = "BareResearchWorkflow"
DEFAULT_QUEUES = {
    "orchestrator": "bench-bare-orchestrator",
    "search": "bench-bare-search",
    "llm": "bench-bare-llm",
}
POOLS = tuple(DEFAULT_QUEUES)


@dataclass
class BareRequest:
    """Input of `BareResearchWorkflow`: how many searches to fan out, and where to send them."""

    question: str
    searches: int
    search_queue: str
    llm_queue: str


@dataclass
class BarePlanInput:
    """Input of the bare `plan` activity."""

    question: str
    searches: int


@dataclass
class BareResult:
    """Output of `BareResearchWorkflow`: how many searches ran, and a one-line summary."""

    searches: int
    summary: str


@activity.defn(name="plan")
async def plan(input: BarePlanInput) -> list[str]:
    """Return `searches` query strings without thinking about them."""
    return [f"{input.question} {n}" for n in range(input.searches)]


@activity.defn(name="web_search")
async def web_search(query: str) -> str:
    """Return the query: no search happens."""
    return query


@activity.defn(name="synthesize")
async def synthesize(results: list[str]) -> str:
    """Return a one-line summary of how many results came in."""
    return f"{len(results)} results"


@workflow.defn(name=BARE_WORKFLOW)
class BareResearchWorkflow:
    """Plan, K parallel searches, synthesize: the research workflow's commands, no work."""

    @workflow.run
    async def run(self, request: BareRequest) -> BareResult:
        queries: list[str] = await workflow.execute_activity(
            plan,
            BarePlanInput(question=request.question, searches=request.searches),
            task_queue=request.llm_queue,
            **retry.PLAN.options(),
        )
        # Every search in one workflow task, as the real workflow schedules them.
        results = await asyncio.gather(
            *(
                workflow.execute_activity(
                    web_search,
                    query,
                    task_queue=request.search_queue,
                    **retry.WEB_SEARCH.options(),
                )
                for query in queries
            )
        )
        summary: str = await workflow.execute_activity(
            synthesize,
            list(results),
            task_queue=request.llm_queue,
            **retry.SYNTHESIZE.options(),
        )
        return BareResult(searches=len(results), summary=summary)


def queue_from_env(pool: str) -> str:
    """The queue of `pool`: BENCH_BARE_<POOL>_QUEUE, else the default."""
    return os.environ.get(f"BENCH_BARE_{pool.upper()}_QUEUE") or DEFAULT_QUEUES[pool]


async def run_worker(pool: str, queue: str) -> None:
    """Run one bare pool on `queue` until SIGTERM or SIGINT, configured like the real pools."""
    from research_shared.logs import configure_logging
    from research_shared.serving import run_until_signalled
    from research_shared.settings import TemporalSettings, WorkerSettings
    from research_shared.temporal_client import connect, sdk_runtime

    settings = WorkerSettings()
    configure_logging(settings.log_level, settings.log_format, service=f"bare-{pool}")
    client = await connect(TemporalSettings(), sdk_runtime(settings.sdk_metrics_port))
    shutdown = timedelta(seconds=settings.graceful_shutdown_seconds)
    if pool == "orchestrator":
        worker = Worker(
            client,
            task_queue=queue,
            workflows=[BareResearchWorkflow],
            graceful_shutdown_timeout=shutdown,
        )
    else:
        worker = Worker(
            client,
            task_queue=queue,
            activities=[web_search] if pool == "search" else [plan, synthesize],
            max_concurrent_activities=settings.max_concurrent_activities,
            graceful_shutdown_timeout=shutdown,
        )
    await run_until_signalled(worker, f"bare-{pool}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bare", description="Worker pools of the benchmark's bare baseline workflow."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker", help="run one bare worker pool")
    worker.add_argument("pool", choices=POOLS)
    worker.add_argument(
        "--queue",
        default=None,
        help="task queue (default: BENCH_BARE_<POOL>_QUEUE, else bench-bare-<pool>)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    queue = args.queue or queue_from_env(args.pool)
    asyncio.run(run_worker(args.pool, queue))
    return 0


if __name__ == "__main__":
    code = main()
    # As in `research_cli.main.entrypoint`: skip interpreter finalization, which the SDK's
    # core threads can abort (temporalio/sdk-python issue 300). Output is flushed first.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
