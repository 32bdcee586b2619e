"""`ResearchClient` is the one way in to research runs: nothing else in the project's code
starts workflows, builds workflow handles or reads visibility by hand. The code is read,
not run, so a new call anywhere fails here with where it is."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("cli", "services", "bench", "shared", "scripts")
CLIENT_PACKAGE = ROOT / "shared" / "research_shared" / "client"
BY_HAND = {
    "start_workflow",
    "execute_workflow",
    "get_workflow_handle",
    "get_workflow_handle_for",
    "list_workflows",
    "count_workflows",
}
# (file, function) -> why it may: each entry must still be needed.
ALLOWED = {
    (
        "services/search_worker/research_search/activities.py",
        "SearchActivities._attempts_and_times",
    ): "record_audit reads the history of the run it belongs to, from inside the activity, "
    "with the activity's own client (activity.client()): a worker has no ResearchClient, and "
    "the audit must describe exactly that run's history",
    (
        "bench/_runs.py",
        "baseline_runner.run",
    ): "the benchmark's baselines (bare and floor) run the workflow of bench/bare.py, not a "
    "research run; ResearchClient serves DeepResearchWorkflow only",
    ("bench/hops.py", "measure"): "the step probe runs a workflow of no-op activities of its "
    "own to time the server's hops, not a research run",
    ("bench/hops.py", "task_waits"): "the step probe reads its own no-op workflow's history "
    "for the waits between a task's scheduling and start",
}


def calls_by_hand(path: Path) -> list[tuple[str, int, str]]:
    """(enclosing function, line, method) of each such call in `path`."""
    found: list[tuple[str, int, str]] = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                visit(child, [*scope, child.name])
                continue
            if (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute)
                and child.func.attr in BY_HAND
            ):
                found.append((".".join(scope), child.lineno, child.func.attr))
            visit(child, scope)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), [])
    return found


def scanned_files() -> list[Path]:
    files = [p for folder in SCANNED for p in sorted((ROOT / folder).rglob("*.py"))]
    return [p for p in files if CLIENT_PACKAGE not in p.parents]


def test_only_the_client_builds_workflow_handles() -> None:
    files = scanned_files()
    assert ROOT / "cli" / "research_cli" / "store_commands.py" in files
    assert ROOT / "services" / "api" / "research_api" / "routes.py" in files
    used: set[tuple[str, str]] = set()
    offenders = []
    for path in files:
        name = str(path.relative_to(ROOT))
        for function, line, method in calls_by_hand(path):
            if (name, function) in ALLOWED:
                used.add((name, function))
            else:
                offenders.append(f"{name}:{line} {function or '<module>'} calls {method}")
    assert not offenders, "use ResearchClient instead:\n" + "\n".join(offenders)
    assert used == set(ALLOWED), f"allowed but no longer needed: {set(ALLOWED) - used}"


def test_the_scan_finds_the_calls_the_client_itself_makes() -> None:
    """The scan is not blind: the client's own module is where such calls are."""
    found = calls_by_hand(CLIENT_PACKAGE / "_client.py")
    methods = {method for _, _, method in found}
    assert {"start_workflow", "get_workflow_handle", "list_workflows"} <= methods
    assert ("ResearchClient._handle", "get_workflow_handle") in {(f, m) for f, _, m in found}
