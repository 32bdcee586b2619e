"""`deep-research worker POOL` when it cannot run: a missing extra, no Temporal server, an
invalid setting. Each is one line on stderr and an exit code (1 for the environment, 2 for
the user's input), never a traceback; checked by running the real command.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError
from temporalio.client import Client

from research_cli.embedded import free_port, start_dev_server, stop_process
from research_shared.settings import TAVILY_MAX_TIMEOUT_SECONDS, describe_settings_error
from tests.helpers.processes import DevServer
from tests.helpers.worker_commands import (
    THIS_VENV_BIN,
    CoreInstall,
    core_install,
    error_lines,
    run_worker,
    worker_env,
)

POOLS = ("orchestrator", "search", "llm")
FAKE_TAVILY_KEY = "not-a-real-key"

# -- a core install, with no extras ------------------------------------------------------------


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> CoreInstall:
    """A fresh venv where `pip install -e .` put the core dependencies only."""
    return core_install(tmp_path_factory.mktemp("core-venv"))


@pytest.fixture(scope="module")
def core_bin(core: CoreInstall) -> Path:
    """The bin folder of the core install, checked to hold no optional package."""
    bin_dir = core.bin_dir
    done = subprocess.run(
        [
            str(bin_dir / "python"),
            "-c",
            "import importlib.util as u; "
            "print(*[m for m in ('agents', 'openai', 'httpx', 'tavily') if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "", f"the core install has optional packages: {done.stdout}"
    return bin_dir


def test_installing_the_project_prints_no_warning(core: CoreInstall) -> None:
    """Building the project (setuptools reading pyproject.toml) and installing it warns of
    nothing: no deprecated metadata, no pip complaint."""
    warnings = [line for line in core.output.splitlines() if "warning" in line.lower()]
    assert not warnings, "\n".join(warnings)
    assert "Successfully installed" in core.output


def test_llm_worker_without_its_extra_names_the_extra(core_bin: Path, tmp_path: Path) -> None:
    done = run_worker("llm", worker_env(tmp_path), core_bin)
    assert error_lines(done) == [
        "error: the llm worker needs the 'llm' extra: pip install 'deep-research[llm]'"
    ]
    assert done.returncode == 1


@pytest.mark.parametrize("provider", ["tavily", "local"])
def test_search_without_its_extra_names_the_extra(
    core_bin: Path, tmp_path: Path, provider: str
) -> None:
    """Tavily's client and the local corpus's markdown and html readers are in the extra."""
    env = worker_env(tmp_path, RESEARCH_SEARCH_PROVIDER=provider, TAVILY_API_KEY=FAKE_TAVILY_KEY)
    done = run_worker("search", env, core_bin)
    assert error_lines(done) == [
        "error: the search worker needs the 'search' extra: pip install 'deep-research[search]'"
    ]
    assert done.returncode == 1
    assert FAKE_TAVILY_KEY not in done.stdout + done.stderr


def test_core_install_runs_the_orchestrator(core_bin: Path, tmp_path: Path) -> None:
    """The orchestrator needs no extra: it gets as far as connecting."""
    env = worker_env(tmp_path, RESEARCH_LOG_LEVEL="WARNING")
    done = run_worker("orchestrator", env, core_bin)
    (line,) = error_lines(done)
    assert line.startswith(f"error: cannot reach Temporal at {env['TEMPORAL_ADDRESS']}: "), line
    assert done.returncode == 1


# -- no Temporal server ------------------------------------------------------------------------


@pytest.mark.parametrize("pool", POOLS)
def test_unreachable_temporal_is_one_line(tmp_path: Path, pool: str) -> None:
    env = worker_env(tmp_path, RESEARCH_LOG_LEVEL="WARNING")
    done = run_worker(pool, env)
    assert error_lines(done) == [
        f"error: cannot reach Temporal at {env['TEMPORAL_ADDRESS']}: Connection refused"
    ]
    assert done.returncode == 1


def test_unreachable_temporal_is_retried_for_the_configured_time(tmp_path: Path) -> None:
    env = worker_env(tmp_path, RESEARCH_CONNECT_RETRY_SECONDS="2")
    done = run_worker("orchestrator", env)
    lines = error_lines(done)
    assert any("waiting for Temporal" in line for line in lines[:-1]), lines
    assert lines[-1] == (
        f"error: cannot reach Temporal at {env['TEMPORAL_ADDRESS']}: Connection refused"
    )
    assert done.returncode == 1


def test_a_worker_started_before_its_server_connects_when_the_server_comes_up(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = worker_env(
        tmp_path, TEMPORAL_ADDRESS=f"127.0.0.1:{port}", RESEARCH_CONNECT_RETRY_SECONDS="300"
    )
    log = tmp_path / "orchestrator.log"
    server = DevServer(db_file=tmp_path / "temporal.db", port=port, log_file=tmp_path / "server")
    with log.open("ab") as out:
        worker = subprocess.Popen(
            [str(THIS_VENV_BIN / "deep-research"), "worker", "orchestrator"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_log(log, "waiting for Temporal", worker)
        server.process = start_dev_server(server.db_file, port, log_file=server.log_file)
        wait_for_log(log, "worker started", worker, within=120)
    finally:
        stop_process(worker, timeout=15)
        if server.process is not None:
            stop_process(server.process, timeout=15)


def wait_for_log(log: Path, text: str, proc: subprocess.Popen[bytes], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace") if log.exists() else ""
        if text in content:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the worker exited ({proc.returncode}):\n{content}")
        time.sleep(0.2)
    raise AssertionError(f"no '{text}' in the worker's log after {within:g}s")


async def test_an_unknown_namespace_is_one_line(
    dev_server: DevServer, client: Client, tmp_path: Path
) -> None:
    env = worker_env(
        tmp_path,
        TEMPORAL_ADDRESS=dev_server.address,
        TEMPORAL_NAMESPACE="no-such-namespace",
        RESEARCH_LOG_LEVEL="ERROR",
    )
    done = await asyncio.to_thread(run_worker, "orchestrator", env)
    assert error_lines(done)[-1] == (
        "error: the orchestrator worker cannot poll research-orchestrator: "
        "Namespace no-such-namespace is not found."
    )
    assert done.returncode == 1


# -- invalid settings --------------------------------------------------------------------------


INVALID_SETTINGS: list[tuple[str, dict[str, str], list[str]]] = [
    (
        "search",
        {"RESEARCH_TAVILY_TIMEOUT_SECONDS": "500"},
        ["RESEARCH_TAVILY_TIMEOUT_SECONDS='500'", f"{TAVILY_MAX_TIMEOUT_SECONDS:g}"],
    ),
    (
        "search",
        {"RESEARCH_SEARCH_PROVIDER": "tavily"},
        ["RESEARCH_SEARCH_PROVIDER=tavily needs TAVILY_API_KEY"],
    ),
    ("search", {"TAVILY_API_KEY": "   "}, ["TAVILY_API_KEY is blank"]),
    (
        "llm",
        {"RESEARCH_LLM_PROVIDER": "openai"},
        ["RESEARCH_LLM_PROVIDER=openai needs OPENAI_API_KEY or OPENAI_BASE_URL"],
    ),
    ("llm", {"RESEARCH_OPENAI_TIMEOUT_SECONDS": "inf"}, ["RESEARCH_OPENAI_TIMEOUT_SECONDS"]),
    (
        "orchestrator",
        {"RESEARCH_METRICS_PORT": "70000", "RESEARCH_LOG_FORMAT": "xml"},
        ["RESEARCH_METRICS_PORT='70000'", "65535", "RESEARCH_LOG_FORMAT='xml'"],
    ),
    ("orchestrator", {"RESEARCH_LOG_LEVEL": "LOUD"}, ["RESEARCH_LOG_LEVEL='LOUD'"]),
    ("orchestrator", {"RESEARCH_MAX_CACHED_WORKFLOWS": "-1"}, ["RESEARCH_MAX_CACHED_WORKFLOWS"]),
    ("orchestrator", {"TEMPORAL_TLS": "perhaps"}, ["TEMPORAL_TLS='perhaps'"]),
    ("llm", {"RESEARCH_CONNECT_RETRY_SECONDS": "-1"}, ["RESEARCH_CONNECT_RETRY_SECONDS"]),
    ("llm", {"RESEARCH_MODEL_PRICES": "gpt-4.1=2"}, ["RESEARCH_MODEL_PRICES='gpt-4.1=2'", "JSON"]),
    (
        "llm",
        {"RESEARCH_MODEL_PRICES": '{"house": {"input_per_million": -1, "output_per_million": 1}}'},
        ['RESEARCH_MODEL_PRICES["house"]["input_per_million"]=-1', "greater than or equal to 0"],
    ),
]


@pytest.mark.parametrize(
    ("pool", "settings", "named"),
    INVALID_SETTINGS,
    ids=[f"{pool}-{'-'.join(settings)}" for pool, settings, _ in INVALID_SETTINGS],
)
def test_invalid_setting_is_one_line_naming_it(
    tmp_path: Path, pool: str, settings: dict[str, str], named: list[str]
) -> None:
    done = run_worker(pool, worker_env(tmp_path, **settings))
    (line,) = error_lines(done)
    assert line.startswith("error: invalid settings: "), line
    for text in named:
        assert text in line
    assert done.returncode == 2


def test_a_missing_corpus_folder_is_the_users_input(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    done = run_worker("search", worker_env(tmp_path, RESEARCH_CORPUS_DIR=str(missing)))
    assert error_lines(done) == [
        f"error: RESEARCH_CORPUS_DIR: the corpus folder {missing} does not exist"
    ]
    assert done.returncode == 2


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("setting", "what"),
    [
        ("RESEARCH_METRICS_PORT", "metrics and probes"),
        ("RESEARCH_SDK_METRICS_PORT", "the SDK metrics"),
    ],
)
def test_a_busy_metrics_port_is_one_line(
    tmp_path: Path, busy_port: int, setting: str, what: str
) -> None:
    done = run_worker("orchestrator", worker_env(tmp_path, **{setting: str(busy_port)}))
    (line,) = error_lines(done)
    assert line.startswith(f"error: cannot serve {what} on port {busy_port}: "), line
    assert done.returncode == 1


def test_only_settings_errors_are_described() -> None:
    class Other(BaseModel):
        count: int

    with pytest.raises(ValidationError) as caught:
        Other.model_validate({"count": "many"})
    assert describe_settings_error(caught.value) is None
