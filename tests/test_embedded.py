"""The embedded stack as a user meets it: `deep-research demo` researches and stops everything;
`deep-research dev` runs until Ctrl-C, which stops the server and all three workers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from research_cli.embedded import free_port
from research_shared.encryption import EncryptionCodec, Keyring

pytestmark = pytest.mark.e2e


def processes_of(data_dir: Path) -> list[int]:
    """Pids of processes started for this data folder: the server names its SQLite file on
    its command line, and the workers carry RESEARCH_DATA_DIR in their environment."""
    found = []
    marker = str(data_dir)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline or f"RESEARCH_DATA_DIR={marker}" in environ:
            found.append(int(entry.name))
    return found


def parent_of(pid: int) -> int | None:
    """The parent's pid of `pid`, None once it has exited."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may hold spaces; the fields after it do not.
    return int(stat.rpartition(")")[2].split()[1])


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "research_cli", *args]


def run_command(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run `deep-research ARGS` to its end."""
    return subprocess.run(
        command(*args),
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def wait_for_exit(data_dir: Path, within: float = 10.0) -> list[int]:
    """The processes of `data_dir` still running after up to `within` seconds."""
    deadline = time.monotonic() + within
    while processes_of(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    return processes_of(data_dir)


def kill_leftovers(data_dir: Path) -> None:
    """After a failure: what the command under test did not stop, so nothing outlives it."""
    for pid in processes_of(data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_demo_researches_and_leaves_nothing_running(tmp_path: Path) -> None:
    """Also with a shell's leftover remote-cluster settings: the embedded stack's processes
    talk to their own dev server, without TLS or a key."""
    data_dir = tmp_path / "data"
    leftovers = {
        "TEMPORAL_ADDRESS": "remote.example:7233",
        "TEMPORAL_NAMESPACE": "elsewhere",
        "TEMPORAL_API_KEY": "not-for-the-local-server",
        "TEMPORAL_TLS": "true",
        "TEMPORAL_TLS_CA": "/nonexistent/ca.pem",
        "TEMPORAL_TLS_SERVER_NAME": "remote.example",
        "temporal_tls_cert": "/nonexistent/client.pem",
    }
    question = "How do I compress data with zlib?"
    result = run_command(
        *("demo", question, "--max-searches", "2", "--data-dir", str(data_dir)),
        *("--port", str(free_port())),
        env={**os.environ, **leftovers},
        cwd=tmp_path,
    )
    kill_leftovers(data_dir)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "report written to" in result.stdout
    report = next((tmp_path / "reports").glob("*.md")).read_text()
    assert "zlib" in report and "## Sources" in report
    assert (data_dir / "temporal.db").is_file()
    assert processes_of(data_dir) == []


def with_sigint_ignored(args: list[str]) -> list[str]:
    """`args` started as a shell without job control starts a background job (`dev &` in a
    script, a test suite run in the background): with SIGINT ignored, which the program
    inherits."""
    return ["bash", "-c", 'trap "" INT; exec "$@"', "bash", *args]


def test_dev_runs_until_ctrl_c_then_stops_everything(tmp_path: Path) -> None:
    """SIGINT stops `dev` and everything it started, even when it inherited SIGINT ignored
    (asyncio's own Ctrl-C handling would leave it ignored, and `dev` running for ever)."""
    data_dir = tmp_path / "data"
    port = free_port()
    api_port = free_port()
    dev = subprocess.Popen(
        with_sigint_ignored(
            command(
                *("dev", "--data-dir", str(data_dir), "--port", str(port), "--ui-port", "0"),
                *("--api-port", str(api_port)),
            )
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert dev.stdout is not None
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = dev.stdout.readline()
            lines.append(line)
            if "Ctrl-C stops everything" in line or not line:
                break
        assert any("Ctrl-C stops everything" in line for line in lines), lines
        assert any(f"HTTP API on http://127.0.0.1:{api_port}" in line for line in lines), lines

        run = subprocess.run(
            command("run", "How do I parse JSON?", "--max-searches", "2", "--json"),
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{port}"},
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        # Besides `dev` itself: the server, three workers and the API, which lists the run.
        assert len(set(processes_of(data_dir)) - {dev.pid}) == 5
        run_id = json.loads(run.stdout)["workflow_id"]
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/v1/research") as answer:
            assert run_id in {r["id"] for r in json.load(answer)["runs"]}

        dev.send_signal(signal.SIGINT)
        assert dev.wait(timeout=90) == 128 + signal.SIGINT
    finally:
        if dev.poll() is None:
            dev.kill()
            # A killed `dev` cannot stop its children: do it here, so a failure leaves nothing.
            for pid in processes_of(data_dir):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while processes_of(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_of(data_dir) == []


def when_served(request: urllib.request.Request, within: float = 60.0) -> tuple[Any, bytes]:
    """The headers and body of the answer, once the server behind `request` listens (the UI
    and the codec server come up beside the dev server, not before it answers)."""
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.headers, answer.read()
        except urllib.error.URLError as err:
            if isinstance(err, urllib.error.HTTPError) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_dev_with_a_key_gives_the_ui_a_codec_server(tmp_path: Path) -> None:
    """`deep-research dev` with an encryption key starts the codec server and hands its
    endpoint to the Temporal UI (`--ui-codec-endpoint`): the UI's own settings name it, and
    it decrypts a payload sealed with that key for the UI's origin. The token in the
    endpoint is printed nowhere."""
    data_dir = tmp_path / "data"
    key = os.urandom(32)
    ui_port = free_port()
    env = {**os.environ, "RESEARCH_ENCRYPTION_KEY": base64.b64encode(key).decode()}
    env.pop("RESEARCH_PAYLOAD_STORE", None)  # the stack's own folder
    dev = subprocess.Popen(
        command(
            *("dev", "--data-dir", str(data_dir), "--port", str(free_port())),
            *("--ui-port", str(ui_port), "--api-port", "0"),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    try:
        lines = wait_for_output(dev, "Ctrl-C stops everything", 90)
        assert "Ctrl-C stops everything" in lines[-1], lines
        assert any("decrypts payloads through the codec server" in line for line in lines)
        ui = f"http://127.0.0.1:{ui_port}"
        endpoint = json.loads(when_served(urllib.request.Request(f"{ui}/api/v1/settings"))[1])[
            "Codec"
        ]["Endpoint"]
        assert endpoint.startswith("http://127.0.0.1:"), endpoint
        token = endpoint.rsplit("/", 1)[-1]
        assert len(token) >= 16 and not any(token in line for line in lines)
        # Besides `dev`: the server, three workers and the codec server.
        assert len(set(processes_of(data_dir)) - {dev.pid}) == 5

        sealed = asyncio.run(
            EncryptionCodec(Keyring([key])).encode(
                [Payload(metadata={"encoding": b"json/plain"}, data=b'{"question": "sealed"}')]
            )
        )
        request = urllib.request.Request(
            f"{endpoint}/decode",
            data=json_format.MessageToJson(Payloads(payloads=sealed)).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Origin": ui},
        )
        headers, body = when_served(request)
        assert headers["Access-Control-Allow-Origin"] == ui
        [opened] = json_format.Parse(body, Payloads()).payloads
        assert json.loads(opened.data) == {"question": "sealed"}

        dev.send_signal(signal.SIGINT)
        assert dev.wait(timeout=60) in (0, 130)
    finally:
        if dev.poll() is None:
            dev.kill()
        kill_leftovers(data_dir)
    assert wait_for_exit(data_dir) == []


def test_dev_on_a_busy_port_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_command(
            *("dev", "--data-dir", str(tmp_path), "--port", str(port), "--ui-port", "0"),
            *("--api-port", "0"),
            timeout=60,
        )
    assert result.returncode == 1
    assert "error: port " in result.stderr and "is in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert processes_of(tmp_path) == []


def test_dev_gives_up_on_a_worker_that_keeps_exiting(tmp_path: Path) -> None:
    """A misconfigured pool (Tavily asked for, no key) is restarted a few times, then `dev`
    says which worker and where its log is, and stops everything."""
    env = {**os.environ, "RESEARCH_SEARCH_PROVIDER": "tavily"}
    env.pop("TAVILY_API_KEY", None)
    data_dir = tmp_path / "data"
    result = run_command(
        *("dev", "--data-dir", str(data_dir), "--port", str(free_port()), "--ui-port", "0"),
        *("--api-port", "0"),
        env=env,
        timeout=120,
    )
    assert result.returncode == 1
    assert "error: worker search keeps exiting; see " in result.stderr
    assert "Traceback" not in result.stderr
    assert "needs TAVILY_API_KEY" in (data_dir / "logs" / "search.log").read_text()
    assert wait_for_exit(data_dir) == []


def test_demo_gives_up_on_a_pool_that_dies_at_start(tmp_path: Path) -> None:
    """A pool that cannot start (Tavily asked for, no key) would leave the run waiting
    forever: `demo` restarts it a few times, then names it and its log, and stops."""
    env = {**os.environ, "RESEARCH_SEARCH_PROVIDER": "tavily"}
    env.pop("TAVILY_API_KEY", None)
    data_dir = tmp_path / "data"
    try:
        result = run_command(
            *("demo", "--max-searches", "2", "--data-dir", str(data_dir)),
            *("--port", str(free_port())),
            env=env,
            cwd=tmp_path,
        )
    finally:
        left = wait_for_exit(data_dir)
        kill_leftovers(data_dir)
    assert result.returncode == 1, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last == f"error: worker search keeps exiting; see {data_dir / 'logs' / 'search.log'}"
    assert "Traceback" not in result.stderr
    assert "needs TAVILY_API_KEY" in (data_dir / "logs" / "search.log").read_text()
    assert left == []


def wait_for_output(proc: subprocess.Popen[str], marker: str, within: float) -> list[str]:
    """Lines of `proc`'s output up to the one holding `marker` (all of them if it ends)."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if marker in line or not line:
            break
    return lines


def assert_sigterm_stops_everything(
    args: list[str],
    data_dir: Path,
    cwd: Path,
    until_up: Callable[[subprocess.Popen[str]], None],
    processes: int,
) -> None:
    """Start the command, wait with `until_up` for its stack to be up, SIGTERM it, and check
    that it exits as a stopped program does and that the `processes` it started (the
    server, the workers, the API) are gone."""
    proc = subprocess.Popen(
        command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=cwd,
    )
    started: set[int] = set()
    try:
        until_up(proc)
        # What the command started itself. The search worker may still be building the
        # built-in corpus in a fresh data folder, with render processes of its own; those
        # are grandchildren, and the check after the SIGTERM below finds them if left.
        started = {pid for pid in processes_of(data_dir) if parent_of(pid) == proc.pid}
        assert len(started) == processes, started

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
        left = wait_for_exit(data_dir)
        kill_leftovers(data_dir)
    assert left == []
    assert still_running(started) == set()


def api_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def still_running(pids: set[int]) -> set[int]:
    """Those of `pids` that name a live process (a zombie has ended)."""
    live = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            live.add(pid)
    return live


def test_dev_stops_everything_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM, what a process manager sends, stops the server, the three workers and the API
    as Ctrl-C does."""
    data_dir = tmp_path / "data"
    logs = [data_dir / "logs" / f"{pool}.log" for pool in ("orchestrator", "search", "llm")]
    api_port = free_port()

    def polling() -> bool:
        return all(log.exists() and "worker started" in log.read_text() for log in logs)

    def until_up(dev: subprocess.Popen[str]) -> None:
        lines = wait_for_output(dev, "Ctrl-C stops everything", 60)
        assert "Ctrl-C stops everything" in lines[-1], lines
        assert any(f"HTTP API on http://127.0.0.1:{api_port}" in line for line in lines), lines
        deadline = time.monotonic() + 120
        while not (polling() and api_ready(api_port)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert polling(), "the three workers did not start polling"
        assert api_ready(api_port), "the API did not answer"

    args = ["dev", "--data-dir", str(data_dir), "--port", str(free_port()), "--ui-port", "0"]
    args += ["--api-port", str(api_port)]
    assert_sigterm_stops_everything(args, data_dir, tmp_path, until_up, processes=5)


def test_demo_stops_everything_on_sigterm(tmp_path: Path) -> None:
    """A demo stopped by SIGTERM while its run waits (here, for its plan to be reviewed)
    stops the server and the workers."""
    data_dir = tmp_path / "data"

    def until_up(demo: subprocess.Popen[str]) -> None:
        lines = wait_for_output(demo, "waiting for the plan", 120)
        assert "waiting for the plan" in lines[-1], lines

    args = ["demo", "--approve-plan", "--data-dir", str(data_dir), "--port", str(free_port())]
    assert_sigterm_stops_everything(args, data_dir, tmp_path, until_up, processes=4)
