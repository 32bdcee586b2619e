"""What the README and the other docs promise is what the code does: the errors it maps,
the activities each pool hosts; and the docs' tables are well-formed markdown."""

from __future__ import annotations

import importlib
import itertools
import re
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from research_llm.worker import OfflineModels
from research_llm.worker import build_worker as build_llm_worker
from research_orchestrator.worker import build_worker as build_orchestrator_worker
from research_search.providers.local_corpus import LocalCorpusSearch
from research_search.worker import build_worker as build_search_worker
from research_shared import errors, routing
from research_shared.payloads import open_payloads
from research_shared.provider_errors import from_http_status
from research_shared.settings import (
    LlmSettings,
    PayloadSettings,
    QueueSettings,
    SearchSettings,
    WorkerSettings,
)
from tests.helpers.contract import activity_name, stub_activities
from tests.helpers.corpus import write_sample_docs

README_PATH = Path(__file__).resolve().parents[1] / "README.md"
README = README_PATH.read_text(encoding="utf-8")


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


DOCS = sorted((Path(__file__).resolve().parents[1] / "docs").glob("*.md"))


def table_cells(line: str) -> list[str]:
    """The cells of a markdown table row as GitHub splits them: at every `|` not escaped
    (inside a code span too)."""
    row = line.strip().removeprefix("|")
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row)]


def tables(text: str) -> list[list[str]]:
    """Each run of lines that start with `|`, outside fenced code blocks."""
    found: list[list[str]] = []
    current: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("|"):
            current.append(line)
            continue
        if current:
            found.append(current)
            current = []
    if current:
        found.append(current)
    return found


@pytest.mark.parametrize("path", [*DOCS, README_PATH], ids=lambda p: p.name)
def test_markdown_tables_have_a_header_and_a_separator(path: Path) -> None:
    for rows in tables(path.read_text(encoding="utf-8")):
        header = table_cells(rows[0])
        where = f"{path.name}: the table starting '{rows[0][:60]}'"
        assert not all(re.fullmatch(r":?-{3,}:?", c) for c in header), f"{where} has no header"
        assert len(rows) >= 2, f"{where} has no separator row"
        separator = table_cells(rows[1])
        assert all(re.fullmatch(r":?-{3,}:?", c) for c in separator), f"{where}: bad separator"
        for row in [rows[1], *rows[2:]]:
            assert len(table_cells(row)) == len(header), f"{where}: a row of another width: {row}"


# -- which activities each pool hosts --------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
POOLS = ("orchestrator", "search", "llm")


@pytest.fixture
async def registered(client: Client, payload_store: str, tmp_path: Path) -> dict[str, set[str]]:
    """The activity names each pool's own `build_worker` registers (the workers are built,
    never run)."""
    queues, settings = QueueSettings(), WorkerSettings()
    payloads = open_payloads(PayloadSettings(payload_store=payload_store))
    corpus = await LocalCorpusSearch.open(
        write_sample_docs(tmp_path / "corpus"), tmp_path / "index.sqlite"
    )
    routes = routing.current()  # build_worker of the orchestrator sets the process's routing
    try:
        workers = {
            "orchestrator": build_orchestrator_worker(client, queues, settings),
            "search": build_search_worker(
                client, corpus, queues, settings, SearchSettings(), payloads
            ),
            "llm": build_llm_worker(client, OfflineModels(), LlmSettings(), queues, settings),
        }
    finally:
        routing.configure(routes)
        await corpus.aclose()
        await payloads.aclose()
    return {
        pool: {activity_name(fn) for fn in worker.config().get("activities", [])}
        for pool, worker in workers.items()
    }


async def test_the_orchestrators_workflow_cache_is_the_documented_default(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's default for `RESEARCH_MAX_CACHED_WORKFLOWS` is the setting's, and the
    orchestrator's worker is built with the setting (a value set in the environment)."""
    row = table_cells(line_of("README.md", "| `RESEARCH_MAX_CACHED_WORKFLOWS`"))
    default = WorkerSettings.model_fields["max_cached_workflows"].default
    assert row[1] == f"`{default}`"
    monkeypatch.setenv("RESEARCH_MAX_CACHED_WORKFLOWS", "37")
    routes = routing.current()
    try:
        # A queue of its own: a built worker stays registered with the client for its queue.
        queues = QueueSettings(orchestrator_queue=f"cache-{uuid.uuid4().hex}")
        worker = build_orchestrator_worker(client, queues, WorkerSettings())
    finally:
        routing.configure(routes)
    assert worker.config()["max_cached_workflows"] == 37


def named_activities(text: str) -> set[str]:
    """The contract's activity names that `text` mentions as words."""
    names = {activity_name(stub) for stub in stub_activities()}
    return {name for name in names if re.search(rf"(?<![\w-]){name}(?![\w-])", text)}


def docstring(module: str, attribute: str | None = None) -> str:
    found = importlib.import_module(module)
    text = (getattr(found, attribute) if attribute else found).__doc__
    assert text, f"{module} {attribute or ''} has no docstring"
    return str(text)


def header_comment(path: str) -> str:
    """The comment lines a file starts with."""
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    return "\n".join(itertools.takewhile(lambda line: line.startswith("#"), lines))


def line_of(path: str, start: str) -> str:
    """The one line of `path` that starts with `start`."""
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    found = [line for line in lines if line.startswith(start)]
    assert len(found) == 1, f"{path}: {len(found)} lines start with {start!r}"
    return found[0]


def readme_layout(folder: str) -> str:
    """What the README's layout says a service folder holds, up to its list of modules."""
    layout = README[README.index("## Layout") :]
    entry = layout[layout.index(folder) + len(folder) :]
    return entry[: entry.index(";")]


def readme_diagram_box(pool: int) -> str:
    """The text of the diagram's LLM (0) or search (1) worker box, below its title."""
    lines = README.splitlines()
    top = next(i for i, line in enumerate(lines) if "| LLM worker" in line)
    cells = []
    for line in lines[top + 1 :]:
        if "OpenAI Agents SDK" in line:
            break
        cells.append(line.split("|")[1 + 2 * pool])
    return " ".join(cells)


def by_queue(text: str) -> dict[str, str]:
    """`a and b on `queue`; c on `other`` read as {queue: names}."""
    parts = [re.fullmatch(r"(.*) on `([\w-]+)`", part.strip()) for part in text.split(";")]
    assert all(parts), text
    return {match.group(2): match.group(1) for match in parts if match}


def documented() -> list[tuple[str, str, str]]:
    """(where, pool, text) for every text that lists the activities a pool hosts."""
    activities_row = line_of("README.md", "| activities |").split("|")[2]
    queues = by_queue(activities_row)
    observability = line_of("deploy/observability/README.md", "| Throughput and errors |")
    return [
        ("README activities row, research-llm", "llm", queues["research-llm"]),
        ("README activities row, research-search", "search", queues["research-search"]),
        ("README diagram, LLM worker", "llm", readme_diagram_box(0)),
        ("README diagram, search worker", "search", readme_diagram_box(1)),
        ("README layout, llm_worker", "llm", readme_layout("services/llm_worker/")),
        ("README layout, search_worker", "search", readme_layout("services/search_worker/")),
        ("README, RESEARCH_LLM_QUEUE", "llm", line_of("README.md", "| `RESEARCH_LLM_QUEUE`")),
        (
            "README, RESEARCH_SEARCH_QUEUE",
            "search",
            line_of("README.md", "| `RESEARCH_SEARCH_QUEUE`"),
        ),
        ("docs/deploy.md pools, llm", "llm", line_of("docs/deploy.md", "| llm | `deep-research-")),
        (
            "docs/deploy.md pools, search",
            "search",
            line_of("docs/deploy.md", "| search | `deep-research-"),
        ),
        (
            "docs/deploy.md pools, orchestrator",
            "orchestrator",
            line_of("docs/deploy.md", "| orchestrator | `deep-research-"),
        ),
        (
            "observability README, LLM pool",
            "llm",
            observability[observability.index("attempts of") : observability.index("(LLM pool)")],
        ),
        (
            "observability README, search pool",
            "search",
            observability[observability.index("(LLM pool)") : observability.index("(search pool)")],
        ),
        ("research_llm docstring", "llm", docstring("research_llm")),
        ("research_llm.worker docstring", "llm", docstring("research_llm.worker")),
        ("research_search docstring", "search", docstring("research_search")),
        ("research_search.worker docstring", "search", docstring("research_search.worker")),
        ("research_orchestrator docstring", "orchestrator", docstring("research_orchestrator")),
        (
            "research_orchestrator.worker docstring",
            "orchestrator",
            docstring("research_orchestrator.worker"),
        ),
        (
            "AuditModelStep docstring",
            "llm",
            docstring("research_shared.models", "AuditModelStep"),
        ),
        (
            "research_shared.retry docstring, model steps",
            "llm",
            docstring("research_shared.retry").split("- the model steps")[1],
        ),
        ("llm_worker Dockerfile", "llm", header_comment("services/llm_worker/Dockerfile")),
        ("search_worker Dockerfile", "search", header_comment("services/search_worker/Dockerfile")),
        (
            "orchestrator Dockerfile",
            "orchestrator",
            header_comment("services/orchestrator/Dockerfile"),
        ),
        (
            "llm-worker kustomization",
            "llm",
            header_comment("deploy/k8s/base/llm-worker/kustomization.yaml"),
        ),
        (
            "search-worker kustomization",
            "search",
            header_comment("deploy/k8s/base/search-worker/kustomization.yaml"),
        ),
        (
            "orchestrator kustomization",
            "orchestrator",
            header_comment("deploy/k8s/base/orchestrator/kustomization.yaml"),
        ),
    ]


async def test_docs_name_the_activities_each_pool_registers(
    registered: dict[str, set[str]],
) -> None:
    assert registered["llm"] and registered["search"], registered
    wrong = [
        f"{where}: names {sorted(named_activities(text))}, the {pool} pool registers "
        f"{sorted(registered[pool])}"
        for where, pool, text in documented()
        if named_activities(text) != registered[pool]
    ]
    assert not wrong, "\n".join(wrong)
    # Every pool is documented above, and together the pools host every stub of the contract.
    assert {pool for _, pool, _ in documented()} == set(POOLS)
    assert set().union(*registered.values()) == {activity_name(s) for s in stub_activities()}
