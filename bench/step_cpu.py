"""The CPU one search and one plan call cost in a worker's process, three ways: the floor's
activity, the provider library alone, and ours.

- **floor**: `bench/bare.py`'s activity, its HTTP calls and nothing else;
- **library**: the library our worker must use, called the way our provider calls it and
  nothing more: tavily-python's `AsyncTavilyClient` over an httpx client (one /search, then
  one /extract per hit, three at a time), the Agents SDK's `Runner.run` of our planner agent
  on our OpenAI-compatible model;
- **ours**: our activity (`web_search` with provider-call recording, the audit's page text,
  the search cache; `plan` with recording), its result then encoded by our data converter
  (JSON, AES-GCM, the payload store for a large one), as a worker does before it answers.

Each runs in this process against `bench/providers.py`'s servers, under the SDK's
`ActivityEnvironment`, with the payload store in a folder under `--dir` and a fresh key.
Searches run five at a time, as a round's do. The kinds alternate for `--rounds` rounds of
`--calls` calls each; the script prints, per kind, the least, median and most CPU time per
call over the rounds (the whole process) and the median of the event loop's thread alone.

    python bench/step_cpu.py [--calls 200] [--rounds 3] [--dir DIR] [--json]

No figure is asserted; docs/benchmarks.md has them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from agents import Runner
from tavily import AsyncTavilyClient
from temporalio.converter import DataConverter
from temporalio.testing import ActivityEnvironment

from bench._stack import (
    PLAN_MODEL,
    WRITE_MODEL,
    BenchError,
    Processes,
    new_encryption_key,
    start_providers,
)
from bench.bare import EXTRACT_CONCURRENCY, FloorActivities
from research_llm.activities import LlmActivities
from research_llm.agents import build_planner, plan_prompt
from research_llm.providers.openai_compatible import OpenAICompatibleModels, configure_agents_sdk
from research_search.activities import SearchActivities
from research_search.providers.tavily import TavilySearch
from research_shared.logs import configure_logging
from research_shared.models import PlanInput, WebSearchInput
from research_shared.payloads import open_payloads
from research_shared.recorded_calls import CallRecorder
from research_shared.settings import PayloadSettings

KINDS = ("floor", "library", "ours")
SEARCHES_AT_ONCE = 5
HITS = 5

Step = Callable[[int], Awaitable[Any]]


def question(index: int) -> str:
    return f"question {uuid.uuid4().hex} about aspect {index}"


async def steps(folder: Path) -> tuple[dict[str, dict[str, Step]], Callable[[], Awaitable[None]]]:
    """For each step and kind, a call that does it once; and what closes them all."""
    procs = Processes(folder / "logs")
    urls = await start_providers(procs)
    payloads = open_payloads(
        PayloadSettings(
            payload_store=f"file://{folder / 'payloads'}",
            encryption_key=new_encryption_key(),
            encryption_key_file=None,
            encryption_previous_keys=None,
        )
    )
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id=f"step-cpu-{uuid.uuid4().hex[:8]}")

    floor = FloorActivities(
        urls.tavily, urls.tavily_key, urls.openai, urls.openai_key, PLAN_MODEL, WRITE_MODEL
    )
    plain = httpx.AsyncClient(base_url=urls.tavily, timeout=30.0)
    tavily = AsyncTavilyClient(api_key=urls.tavily_key, api_base_url=urls.tavily, client=plain)
    provider = TavilySearch(
        urls.tavily_key, base_url=urls.tavily, recorder=CallRecorder(payloads.records, "tavily")
    )
    searches = SearchActivities(provider, records=payloads.records)
    bare_models = OpenAICompatibleModels(api_key=urls.openai_key, base_url=urls.openai)
    planner = build_planner(bare_models.model_for(PLAN_MODEL))
    models = OpenAICompatibleModels(
        api_key=urls.openai_key,
        base_url=urls.openai,
        recorder=CallRecorder(payloads.records, "openai"),
    )
    llm = LlmActivities(models, PLAN_MODEL, WRITE_MODEL)

    async def floor_search(index: int) -> None:
        found = await env.run(floor.web_search, {"query": question(index), "hits": HITS})
        await DataConverter.default.encode([found])

    async def library_search(index: int) -> None:
        found = await tavily.search(
            question(index),
            search_depth="basic",
            max_results=HITS,
            include_answer=False,
            include_images=False,
            timeout=30.0,
        )
        gate = asyncio.Semaphore(EXTRACT_CONCURRENCY)

        async def page(url: str) -> None:
            async with gate:
                await tavily.extract(
                    [url], extract_depth="basic", format="text", include_images=False, timeout=30
                )

        await asyncio.gather(*(page(r["url"]) for r in found["results"][:HITS]))

    async def our_search(index: int) -> None:
        search = WebSearchInput(query=question(index), max_results=HITS)
        await payloads.converter.encode([await env.run(searches.web_search, search)])

    async def floor_plan(index: int) -> None:
        plan = await env.run(floor.plan, {"question": question(index), "searches": 5})
        await DataConverter.default.encode([plan])

    async def library_plan(index: int) -> None:
        await Runner.run(planner, plan_prompt(PlanInput(question=question(index), max_searches=5)))

    async def our_plan(index: int) -> None:
        plan = PlanInput(question=question(index), max_searches=5)
        await payloads.converter.encode([await env.run(llm.plan, plan)])

    async def close() -> None:
        for closing in (floor.aclose(), plain.aclose(), provider.aclose()):
            await closing
        for source in (bare_models, models):
            await source.aclose()
        await payloads.aclose()
        procs.supervisor.stop_all()

    table: dict[str, dict[str, Step]] = {
        "search": {"floor": floor_search, "library": library_search, "ours": our_search},
        "plan": {"floor": floor_plan, "library": library_plan, "ours": our_plan},
    }
    return table, close


async def timed(step: Step, calls: int, at_once: int) -> tuple[float, float]:
    """CPU ms per call of the whole process and of this thread, `at_once` calls at a time."""
    process, thread = time.process_time(), time.thread_time()
    for batch in range(0, calls, at_once):
        await asyncio.gather(*(step(batch + n) for n in range(min(at_once, calls - batch))))
    return (
        (time.process_time() - process) * 1000 / calls,
        (time.thread_time() - thread) * 1000 / calls,
    )


async def main(args: argparse.Namespace) -> int:
    configure_logging("WARNING", "json", service="step-cpu")
    configure_agents_sdk()  # as the LLM worker's main() does: no tracing
    folder = Path(tempfile.mkdtemp(prefix="bench-step-cpu-", dir=args.dir))
    figures: dict[str, dict[str, dict[str, float]]] = {}
    try:
        table, close = await steps(folder)
        try:
            for name, kinds in table.items():
                at_once = SEARCHES_AT_ONCE if name == "search" else 1
                for kind in KINDS:  # a warm-up: connections, caches, the agent's schema
                    await timed(kinds[kind], 2 * at_once, at_once)
                samples: dict[str, list[tuple[float, float]]] = {kind: [] for kind in KINDS}
                for number in range(args.rounds):
                    for kind in KINDS if number % 2 == 0 else KINDS[::-1]:
                        samples[kind].append(await timed(kinds[kind], args.calls, at_once))
                figures[name] = {
                    kind: {
                        "least_ms": min(p for p, _ in rows),
                        "median_ms": statistics.median(p for p, _ in rows),
                        "most_ms": max(p for p, _ in rows),
                        "loop_thread_median_ms": statistics.median(t for _, t in rows),
                    }
                    for kind, rows in samples.items()
                }
        finally:
            await close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"CPU ms per call, {args.rounds} rounds of {args.calls} calls a kind, alternating")
    for name, rows in figures.items():
        print(f"{name:<8} {'kind':<8} {'least':>7} {'median':>7} {'most':>7} {'loop thread':>12}")
        for kind, row in rows.items():
            print(
                f"{'':<8} {kind:<8} {row['least_ms']:>7.2f} {row['median_ms']:>7.2f} "
                f"{row['most_ms']:>7.2f} {row['loop_thread_median_ms']:>12.2f}"
            )
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="a kind a round (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating (default 3)")
    parser.add_argument("--dir", default=None, help="folder of the payload store (default: temp)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    # One line each, as bench/store_floor.py says it: argparse's own would add the usage.
    if args.calls < 1 or args.rounds < 1:
        print("error: --calls and --rounds must be at least 1", file=sys.stderr)
        sys.exit(2)
    if args.dir is not None and not Path(args.dir).is_dir():
        print(f"error: --dir {args.dir} is not a folder", file=sys.stderr)
        sys.exit(2)
    return args


def entrypoint() -> int:
    args = parse()
    try:
        return asyncio.run(main(args))
    except BenchError as err:  # the providers' process did not start
        print(f"step_cpu: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(entrypoint())
