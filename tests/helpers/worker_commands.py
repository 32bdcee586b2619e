"""Running `deep-research worker POOL` as a real command, from this venv or from a fresh one
holding only the core dependencies, and reading the probes of a running worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import venv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from research_cli.embedded import free_port
from research_cli.supervisor import ProcessSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
THIS_VENV_BIN = Path(sys.executable).parent
# What a worker reads from its environment; none of the developer's own may leak in.
_SETTING_PREFIXES = ("RESEARCH_", "TEMPORAL_", "TAVILY_", "OPENAI_")


def worker_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """A worker's environment: no setting of the developer's, a Temporal address where
    nothing listens, one connection attempt, console logs; then `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SETTING_PREFIXES)}
    env.pop("PYTHONPATH", None)
    env.update(
        {
            "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
            "RESEARCH_CONNECT_RETRY_SECONDS": "0",
            "RESEARCH_DATA_DIR": str(data_dir),
            "RESEARCH_LOG_FORMAT": "console",
        }
    )
    env.update(settings)
    return env


def run_worker(
    pool: str, env: Mapping[str, str], bin_dir: Path = THIS_VENV_BIN, within: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run `deep-research worker POOL` to its end (it is expected to fail)."""
    command = bin_dir / "deep-research"
    assert command.exists(), f"{command} is missing: is the project installed in {bin_dir}?"
    return subprocess.run(
        [str(command), "worker", pool],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=within,
        check=False,
    )


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """What the command wrote, line by line, with a check that no traceback is among it."""
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    return done.stderr.strip().splitlines()


@dataclass(frozen=True)
class CoreInstall:
    """A venv holding the project with no extras, and all that `pip install -e .` printed."""

    bin_dir: Path
    output: str


def core_install(folder: Path) -> CoreInstall:
    """A fresh venv with the project installed with no extras.

    pip runs verbose so that the build backend's own output (setuptools' deprecation
    warnings about the project's metadata) is in `output`: at its default level pip hides
    it. It runs isolated from the pip configuration of the machine, which is no part of the
    project and may add warnings of its own (an index location that does not exist).
    """
    venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    bin_dir = folder / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "--isolated",
            "install",
            "--verbose",
            "--disable-pip-version-check",
            "--no-input",
            "-e",
            str(REPO_ROOT),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"pip install -e {REPO_ROOT} failed:\n{output[-5000:]}"
    return CoreInstall(bin_dir, output)


def http_status(port: int, path: str) -> int:
    """The status of GET `path` on 127.0.0.1:`port`; 0 when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:  # refused, reset, timed out: nothing answered
        return 0


def http_text(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
        return str(answer.read().decode())


def wait_for_status(
    port: int,
    path: str,
    want: int,
    within: float,
    proc: subprocess.Popen[bytes] | None = None,
    log_file: Path | None = None,
) -> None:
    """Poll until `path` answers `want`; fail if `within` seconds pass or `proc` exits."""
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the worker exited ({proc.returncode}):\n{_tail(log_file)}")
        last = http_status(port, path)
        if last == want:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} answered {last}, not {want}, for {within:g}s:\n{_tail(log_file)}")


def module_spec(name: str, module: str, env: Mapping[str, str], log_file: Path) -> ProcessSpec:
    """`python -m module` (a module of the tests package) as a process the project's
    supervisor starts, named `name`, its output in `log_file`."""
    return ProcessSpec(
        name,
        [sys.executable, "-m", module],
        log_file=log_file,
        env=dict(env),
        cwd=REPO_ROOT,  # the tests package is importable from the repository root
    )


def _tail(log_file: Path | None, lines: int = 40) -> str:
    if log_file is None or not log_file.exists():
        return ""
    return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])
