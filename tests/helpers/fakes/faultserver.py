"""A small real HTTP server for provider fakes: counts calls and injects faults.

Provider fakes (Tavily, OpenAI) subclass `FakeProviderServer` and implement `answer()`.
The server runs in a thread on 127.0.0.1 with a free port, so the real `tavily-python`
and `openai` clients talk to it over real sockets. Tests queue faults that hit the next
matching requests: an HTTP status with an optional Retry-After, a delay longer than the
client's timeout, or a connection dropped without an answer. `headers` adds headers of
its own (`retry-after-ms`, say) to an injected answer.

Each call is marked answered once its whole answer is written to the socket, and
`wait_answered` returns it then: a test can kill the caller right after the provider
answered. `before_answer`, when set, runs just before a successful answer is written (a
test cuts the caller's other connections there, so it cannot finish its work).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The stdlib default backlog of 5 stalls a burst of parallel searches for a second.
    request_queue_size = 128


@dataclass
class Fault:
    """What to do instead of answering, for the next `times` requests that `match`."""

    status: int | None = None
    body: dict[str, Any] | None = None
    retry_after: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    times: int = 1
    match: Callable[[str, dict[str, Any]], bool] | None = None


@dataclass
class Call:
    """One request the server received."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    outcome: str = "ok"
    at: float = field(default_factory=time.monotonic)
    answer: Any = None
    """The JSON document the server answered with (None for a dropped connection)."""
    answered_at: float | None = None
    """When the whole answer was written (monotonic clock); None until then."""


class FakeProviderServer:
    """Base of the fakes. Subclasses implement `answer(path, body) -> (status, json)`."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.before_answer: Callable[[Call], None] | None = None
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._answered = threading.Condition(self._lock)
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle -----------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeProviderServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults and counts -------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.calls.clear()

    def calls_to(self, path: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.path == path]

    def wait_answered(self, match: Callable[[Call], bool], within: float = 60.0) -> Call:
        """The first call `match` accepts once its answer is written; blocks (run it in a
        thread from async tests). Raises TimeoutError after `within` seconds."""
        deadline = time.monotonic() + within
        with self._answered:
            while True:
                for call in self.calls:
                    if call.answered_at is not None and match(call):
                        return call
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching call was answered within {within:g}s")
                self._answered.wait(left)

    def _mark_answered(self, call: Call) -> None:
        with self._answered:
            call.answered_at = time.monotonic()
            self._answered.notify_all()

    def _take_fault(self, path: str, body: dict[str, Any]) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.match is None or fault.match(path, body):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # -- protocol ------------------------------------------------------------------------

    def answer(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
        raise NotImplementedError

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else {}
                except json.JSONDecodeError:
                    body = {"_unparsed": raw.decode(errors="replace")}
                path = self.path.split("?", 1)[0]
                call = Call(path=path, body=body, headers=dict(self.headers.items()))
                with fake._lock:
                    fake.calls.append(call)
                fault = fake._take_fault(path, body)
                if fault is not None:
                    if fault.delay:
                        time.sleep(fault.delay)
                    if fault.drop:
                        call.outcome = "dropped"
                        self.close_connection = True
                        self.connection.close()
                        return
                    if fault.status is not None:
                        call.outcome = str(fault.status)
                        headers = dict(fault.headers)
                        if fault.retry_after is not None:
                            headers["Retry-After"] = f"{fault.retry_after:g}"
                        call.answer = fault.body or {"error": "injected"}
                        self._send(fault.status, call.answer, headers)
                        return
                status, payload = fake.answer(path, body, call.headers)
                call.outcome = "ok" if status < 400 else str(status)
                call.answer = payload
                if status < 400 and fake.before_answer is not None:
                    fake.before_answer(call)
                self._send(status, payload, {})
                fake._mark_answered(call)

            def do_GET(self) -> None:
                self._send(404, {"error": "not found"}, {})

            def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)
                    self.wfile.flush()

        return Handler
