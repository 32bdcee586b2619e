"""Figures of research depth: what each round of the default question adds.

Starts the embedded stack (dev server, three pools, offline providers over the built-in
corpus) in a temporary folder, researches the default question with `max_rounds` from 1 to
`--max-rounds`, and prints, as markdown, the rounds of each run (queries, searches, new
sources, gaps, why research stopped) and the report's citations and unsupported sentences.
docs/research-depth.md holds the figures.

    python bench/depth.py [--max-rounds 4] [--question "..."] [--corpus DIR]
                          [--max-searches N] [--results-per-search N]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from pathlib import Path

from research_cli.embedded import EmbeddedStack, free_port
from research_cli.main import DEMO_QUESTION
from research_shared.client import ResearchClient
from research_shared.models import ResearchReport, ResearchRequest
from research_shared.names import ORCHESTRATOR_QUEUE


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--max-rounds", type=int, default=4)
    parser.add_argument("--question", default=DEMO_QUESTION)
    parser.add_argument("--corpus", type=Path, help="folder to search instead of the stdlib docs")
    parser.add_argument("--max-searches", type=int, default=5)
    parser.add_argument("--results-per-search", type=int, default=5)
    args = parser.parse_args()
    env = {"RESEARCH_CORPUS_DIR": str(args.corpus.resolve())} if args.corpus else {}
    with tempfile.TemporaryDirectory() as folder:
        stack = EmbeddedStack(data_dir=Path(folder), port=free_port(), extra_env=env)
        try:
            research = ResearchClient(await stack.start(), task_queue=ORCHESTRATOR_QUEUE)
            print(f"Question: {args.question}\n")
            print(
                "| max_rounds | rounds | searches | sources | citations | unsupported | "
                "reviews | model calls |"
            )
            print("| --- | --- | --- | --- | --- | --- | --- | --- |")
            reports: list[ResearchReport] = []
            for rounds in range(1, args.max_rounds + 1):
                run = await research.start(
                    ResearchRequest(
                        question=args.question,
                        max_rounds=rounds,
                        max_searches=args.max_searches,
                        results_per_search=args.results_per_search,
                    ),
                    id=f"depth-{rounds}-{uuid.uuid4().hex[:6]}",
                )
                report = await research.wait(run.id)
                reports.append(report)
                s = report.stats
                print(
                    f"| {rounds} | {s.rounds} | {s.searches_succeeded} | {s.sources_retrieved} "
                    f"| {s.citations} | {s.unsupported_sentences} | {s.review_rounds} "
                    f"| {s.llm_calls} |"
                )
            print("\nRounds of the deepest run:\n")
            print("| round | queries | searches | new sources | gaps after it | stopped because |")
            print("| --- | --- | --- | --- | --- | --- |")
            for r in reports[-1].rounds:
                queries = "; ".join(r.queries)
                gaps = "; ".join(r.gaps) or "none"
                print(
                    f"| {r.round} | {queries} | {r.searches_succeeded} | {r.sources_new} "
                    f"| {gaps} | {r.done_reason or 'a new round followed'} |"
                )
        finally:
            stack.stop()


if __name__ == "__main__":
    asyncio.run(main())
