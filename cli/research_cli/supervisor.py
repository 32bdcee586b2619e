"""The one process supervisor of the project: the embedded stack (`dev`, `demo`), the test
suite's worker processes and the benchmark start, watch and stop their processes here.

A process is started in its own session with its output appended to a log file; the group
notices when one has exited, restarts it from its spec within a `RestartPolicy`, and stops
everything gracefully (SIGTERM, a grace period, then SIGKILL).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NoReturn


class ProcessError(RuntimeError):
    """A supervised process exited when it should not have, or keeps exiting. The message
    names it and its log: "worker search keeps exiting; see /path/search.log"."""

    def __init__(self, spec: ProcessSpec, problem: str) -> None:
        where = f"; see {spec.log_file}" if spec.log_file else ""
        super().__init__(f"{spec.title} {problem}{where}")
        self.name = spec.name
        self.log_file = spec.log_file


@dataclass(frozen=True)
class ProcessSpec:
    """How to start one process: its name in the group, command, environment and log, and
    how messages call it (`label`, by default the name)."""

    name: str
    args: Sequence[str]
    log_file: Path | None = None
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class RestartPolicy:
    """At most `max_restarts` restarts of one process within `window_seconds`.

    A process that exits again and again right after starting fails from its configuration,
    not by bad luck: restarting it forever would only hide that.
    """

    max_restarts: int = 3
    window_seconds: float = 60.0


def spawn(spec: ProcessSpec) -> subprocess.Popen[bytes]:
    """Start `spec`, its output appended to its log file (discarded without one).

    Each process gets its own session, so a Ctrl-C at the terminal reaches only the parent,
    which then stops its children in order instead of having them all die at once.
    """
    if spec.log_file is None:
        return _popen(spec, subprocess.DEVNULL)
    spec.log_file.parent.mkdir(parents=True, exist_ok=True)
    # The child holds its own copy of the descriptor; the parent's closes with this block.
    with spec.log_file.open("ab") as out:
        return _popen(spec, out)


def _popen(spec: ProcessSpec, out: int | IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(spec.args),
        env=dict(spec.env) if spec.env is not None else None,
        cwd=spec.cwd,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_processes(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    """SIGTERM every live process at once, give them `timeout` seconds together to exit,
    then SIGKILL whichever is left."""
    running = [proc for proc in procs if proc.poll() is None]
    for proc in running:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in running:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM, wait up to `timeout` seconds for a graceful exit, then SIGKILL."""
    stop_processes([proc], timeout)


@dataclass
class StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM (what a process manager sends) cancel the running task, so
    its `finally` blocks stop what it started; `exit_code` then says which signal it was.

    Both are handled by the event loop whatever this process inherited. A program started in
    the background by a shell without job control inherits SIGINT ignored, and asyncio's own
    Ctrl-C handling leaves an ignored SIGINT ignored: `kill -INT` would then do nothing. The
    default action of SIGTERM would end this process and leave its children running.

    A second signal raises `KeyboardInterrupt`, as asyncio's own handling does: the way out
    of a command whose cancelled work cannot end (a prompt's thread waiting for a line). The
    embedded stack's stop runs without the loop, so a second Ctrl-C does not cut it short.
    """

    received: signal.Signals | None = None

    def install(self) -> None:
        """Handle the signals for the task that calls this (a coroutine under the loop)."""
        task = asyncio.current_task()
        assert task is not None, "install() runs inside a task"
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop, sig, task)

    def _stop(self, sig: signal.Signals, task: asyncio.Task[object]) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = sig
        task.cancel()

    @property
    def exit_code(self) -> int:
        """The shell's convention for a program ended by the signal: 128 + its number."""
        return 128 + (self.received or signal.SIGTERM)


@dataclass
class Supervisor:
    """A group of named processes: start them, notice exits, restart within the policy,
    and stop them all.

    `processes` holds the current process of each name; a caller that starts a process
    itself may put it there, and `stop_all` stops it with the rest.
    """

    policy: RestartPolicy = field(default_factory=RestartPolicy)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    specs: dict[str, ProcessSpec] = field(default_factory=dict)
    _restarts: dict[str, list[float]] = field(default_factory=dict)
    _log_starts: dict[str, int] = field(default_factory=dict)

    def start(self, spec: ProcessSpec) -> subprocess.Popen[bytes]:
        """Start `spec` under its name, replacing a process of that name that has exited."""
        current = self.processes.get(spec.name)
        if current is not None and current.poll() is None:
            raise ValueError(f"process {spec.name} is already running")
        log = spec.log_file
        self._log_starts[spec.name] = log.stat().st_size if log and log.exists() else 0
        self.specs[spec.name] = spec
        self.processes[spec.name] = proc = spawn(spec)
        return proc

    def _spec(self, name: str) -> ProcessSpec:
        # A process put into `processes` by its caller has no spec: it has only its name.
        return self.specs.get(name) or ProcessSpec(name, ())

    def log_file(self, name: str) -> Path | None:
        return self._spec(name).log_file

    def log(self, name: str) -> str:
        """The whole log of `name`, over all its restarts ("" without one)."""
        path = self.log_file(name)
        return path.read_text(errors="replace") if path and path.exists() else ""

    def output(self, name: str) -> str:
        """What the current process of `name` has logged since it started."""
        return self.log(name)[self._log_starts.get(name, 0) :]

    def exited(self) -> dict[str, int]:
        """The exit code of each process that is no longer running."""
        codes = {name: proc.poll() for name, proc in self.processes.items()}
        return {name: code for name, code in codes.items() if code is not None}

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        """Start `name` again from its spec; `ProcessError` past the restart policy."""
        now = time.monotonic()
        window = self.policy.window_seconds
        recent = [t for t in self._restarts.get(name, []) if now - t < window]
        if len(recent) >= self.policy.max_restarts:
            raise ProcessError(self.specs[name], "keeps exiting")
        self._restarts[name] = [*recent, now]
        return self.start(self.specs[name])

    def ready(self, name: str, marker: str) -> bool:
        """Whether the current process of `name` has logged `marker`; `ProcessError` if it
        exited first."""
        if marker in self.output(name):
            return True
        code = self.processes[name].poll()
        if code is not None:
            raise ProcessError(self._spec(name), f"exited with code {code}")
        return False

    def wait_ready(self, names: Iterable[str], marker: str, within: float) -> None:
        """Block until each of `names` has logged `marker`; `ProcessError` if one exits
        first, `TimeoutError` after `within` seconds."""
        deadline = time.monotonic() + within
        pending = list(names)
        while pending:
            pending = [name for name in pending if not self.ready(name, marker)]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{', '.join(pending)} did not start in {within:g}s")
            time.sleep(0.1)

    async def watch(
        self,
        restartable: Collection[str],
        on_restart: Callable[[str, int], None],
        interval: float = 1.0,
    ) -> NoReturn:
        """Watch the group until something fails for good: a process in `restartable` that
        exits is restarted within the policy (then `on_restart(name, exit code)` is told), past
        it `ProcessError`; any other process that exits is a `ProcessError` at once."""
        while True:
            await asyncio.sleep(interval)
            for name, code in self.exited().items():
                if name not in restartable:
                    raise ProcessError(self._spec(name), f"exited with code {code}")
                self.restart(name)
                on_restart(name, code)

    def kill(self, name: str) -> None:
        """SIGKILL: no graceful shutdown, in-flight work is lost as in a crash."""
        proc = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()

    def stop(self, name: str, timeout: float = 30.0) -> None:
        stop_process(self.processes[name], timeout)

    def stop_all(self, timeout: float = 30.0, last: Collection[str] = ()) -> None:
        """Stop every process gracefully: all at once, except those in `last`, which are
        stopped after the others have exited (a server after the workers that use it)."""
        first = [proc for name, proc in self.processes.items() if name not in last]
        stop_processes(first, timeout)
        stop_processes([proc for name, proc in self.processes.items() if name in last], timeout)
