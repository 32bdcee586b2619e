"""Figures of research depth: what each round of the default question adds.

Starts the embedded stack (dev server, three pools, offline providers over the built-in
corpus) in a temporary folder, researches the default question with `max_rounds` from 1 to
`--max-rounds`, and prints, as markdown, each run's counts and the rounds of the deepest run
(queries, searches, new sources, the citations of the final report and its unsupported
sentences that fall to the round, gaps, why research stopped). `--port-corpus` searches the
four documents of `tests/test_depth_e2e.py` instead. docs/research-depth.md holds the figures.
Run it from the repository root:

    python bench/depth.py [--max-rounds 4] [--question "..."] [--corpus DIR | --port-corpus]
                          [--max-searches N] [--results-per-search N]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.corpus import PORT_DOCUMENTS

from research_cli.embedded import EmbeddedStack, free_port
from research_cli.main import DEMO_QUESTION
from research_shared.client import ResearchClient
from research_shared.models import ResearchReport, ResearchRequest
from research_shared.names import ORCHESTRATOR_QUEUE

# How `research_llm.citations` finds a citation: [3], [1, 4]; not a link's text.
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\](?!\()")
_UNSUPPORTED = "\n## Sentences the cited sources do not support\n"


def source_rounds(report: ResearchReport) -> dict[int, int]:
    """The round whose searches first retrieved each source, by id. Ids number sources in
    the order of the run's queries, and each round's queries follow the earlier rounds', so
    each round's new sources hold the ids after the previous round's."""
    rounds: dict[int, int] = {}
    for r in report.rounds:
        for _ in range(r.sources_new):
            rounds[len(rounds) + 1] = r.round
    if len(rounds) != len(report.sources):
        raise SystemExit(f"{len(report.sources)} sources, but the rounds count {len(rounds)} new")
    return rounds


def citations_by_round(report: ResearchReport) -> tuple[dict[int, int], dict[int, int]]:
    """Per round: the final report's citations of sources that round retrieved, and its
    unsupported sentences that cite one of them (a sentence citing sources of two rounds
    counts in both)."""
    rounds = source_rounds(report)
    body, _, appendix = report.report_markdown.rpartition("\n## Sources\n")
    cited: dict[int, int] = {r.round: 0 for r in report.rounds}
    for match in _CITATION.finditer(body + "\n" + report.summary):
        for part in match.group(1).split(","):
            cited[rounds[int(part)]] += 1
    if sum(cited.values()) != report.stats.citations:
        raise SystemExit(
            f"counted {sum(cited.values())} citations, the run {report.stats.citations}"
        )
    unsupported: dict[int, int] = {r.round: 0 for r in report.rounds}
    listed = appendix.partition(_UNSUPPORTED)[2].split("\n\n## ")[0]
    sentences = [line[2:] for line in listed.splitlines() if line.startswith("- ")]
    if len(sentences) != report.stats.unsupported_sentences:
        raise SystemExit(f"the appendix lists {len(sentences)} unsupported sentences")
    for sentence in sentences:
        ids = {int(p) for m in _CITATION.finditer(sentence) for p in m.group(1).split(",")}
        for number in {rounds[i] for i in ids}:
            unsupported[number] += 1
    return cited, unsupported


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--max-rounds", type=int, default=4)
    parser.add_argument("--question", default=DEMO_QUESTION)
    corpus = parser.add_mutually_exclusive_group()
    corpus.add_argument("--corpus", type=Path, help="folder to search instead of the stdlib docs")
    corpus.add_argument(
        "--port-corpus", action="store_true", help="the four documents of tests/test_depth_e2e.py"
    )
    parser.add_argument("--max-searches", type=int, default=5)
    parser.add_argument("--results-per-search", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder_path = Path(folder)
        env = {}
        if args.port_corpus:
            args.corpus = folder_path / "port-corpus"
            args.corpus.mkdir()
            for name, text in PORT_DOCUMENTS.items():
                (args.corpus / name).write_text(text, encoding="utf-8")
        if args.corpus:
            env["RESEARCH_CORPUS_DIR"] = str(args.corpus.resolve())
        stack = EmbeddedStack(data_dir=folder_path, port=free_port(), extra_env=env)
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
            deepest = reports[-1]
            cited, unsupported = citations_by_round(deepest)
            print("\nRounds of the deepest run:\n")
            print(
                "| round | queries | searches | new sources | citations | unsupported "
                "| gaps after it | stopped because |"
            )
            print("| --- | --- | --- | --- | --- | --- | --- | --- |")
            for r in deepest.rounds:
                queries = "; ".join(r.queries)
                gaps = "; ".join(r.gaps) or "none"
                print(
                    f"| {r.round} | {queries} | {r.searches_succeeded} | {r.sources_new} "
                    f"| {cited[r.round]} | {unsupported[r.round]} "
                    f"| {gaps} | {r.done_reason or 'a new round followed'} |"
                )
        finally:
            stack.stop()


if __name__ == "__main__":
    asyncio.run(main())
