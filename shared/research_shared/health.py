"""Probes that mean what they say, served with the metrics on RESEARCH_METRICS_PORT.

One small HTTP server answers three paths:

- `/metrics`: the application's Prometheus metrics, the same exposition prometheus_client's
  own server gives (content negotiation and gzip included).
- `/readyz` (readiness): 200 while the worker polls its task queue and its last cheap call to
  Temporal succeeded; 503 while it connects, after SIGTERM, and while Temporal does not
  answer, or while liveness fails. The check runs every `READINESS_CHECK_SECONDS` with a
  timeout of `READINESS_TIMEOUT_SECONDS`, so losing the server shows within a few seconds,
  and so does its return.
- `/healthz` (liveness): 200 while the event loop keeps running; 503 once the loop has not run
  its heartbeat for `stall_seconds` (RESEARCH_LIVENESS_STALL_SECONDS). A worker whose loop is
  stuck (a blocking call in an async activity, a deadlock) polls nothing, heartbeats nothing
  and completes nothing: restarting it is the cure. Losing Temporal is not a reason to
  restart, so liveness does not look at the connection.

The server runs in a thread of its own, not on the event loop, so it still answers while the
loop is stuck. The loop writes what the probes report and the thread only reads it; each
value is a single attribute, replaced whole, so no lock is needed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import structlog
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import RPCError

from research_shared.metrics import metrics_app

log = structlog.get_logger(__name__)

METRICS_PATH = "/metrics"
READY_PATH = "/readyz"
LIVE_PATH = "/healthz"
READINESS_CHECK_SECONDS = 2.0
READINESS_TIMEOUT_SECONDS = 2.0
# The heartbeat runs several times per stall threshold, so one late tick never fails liveness.
_BEATS_PER_THRESHOLD = 4
_MAX_BEAT_SECONDS = 1.0


class Health:
    """What the probes report: written by the worker's event loop, read by the probe server."""

    def __init__(self, stall_seconds: float) -> None:
        self.stall_seconds = stall_seconds
        self._last_beat = time.monotonic()
        self._not_ready: str | None = "starting"

    @property
    def beat_seconds(self) -> float:
        """How often the event loop should call `beat`."""
        return min(_MAX_BEAT_SECONDS, self.stall_seconds / _BEATS_PER_THRESHOLD)

    def beat(self) -> None:
        """The event loop ran: called from a task on the loop, never from another thread."""
        self._last_beat = time.monotonic()

    def set_ready(self, problem: str | None) -> None:
        """None when the worker polls and Temporal answers; else why it is not ready."""
        self._not_ready = problem

    def readiness(self) -> str | None:
        """None when ready, else the reason it is not."""
        # A stuck loop cannot update readiness, so its last word would be stale.
        return self.liveness() or self._not_ready

    def liveness(self) -> str | None:
        """None while the event loop runs, else how long it has been stuck."""
        stalled = time.monotonic() - self._last_beat
        if stalled > self.stall_seconds:
            return f"event loop stuck for {stalled:.0f}s (limit {self.stall_seconds:g}s)"
        return None


async def keep_beating(health: Health) -> None:
    """Run until cancelled, telling `health` that the event loop is alive."""
    while True:
        health.beat()
        await asyncio.sleep(health.beat_seconds)


async def temporal_answers(client: Client) -> str | None:
    """None when Temporal answers a cheap call in time, else what went wrong.

    GetSystemInfo is what every client calls when it connects, so it works wherever a
    connection does (Temporal Cloud included), and it needs no namespace permission; the gRPC
    health service is not exposed by every frontend or proxy.
    """
    try:
        await client.workflow_service.get_system_info(
            GetSystemInfoRequest(), timeout=timedelta(seconds=READINESS_TIMEOUT_SECONDS)
        )
    except RPCError as err:
        return f"Temporal does not answer: {err.status.name} {err.message}"
    except Exception as err:
        # Fail closed: whatever went wrong, this check did not see a healthy connection.
        return f"Temporal does not answer: {type(err).__name__}"
    return None


async def watch_readiness(health: Health, client: Client, polling: Callable[[], bool]) -> None:
    """Run until cancelled, keeping `/readyz` in step with `polling()` and the connection."""
    was_ready = False
    while True:
        problem = await temporal_answers(client) if polling() else "the worker is not polling"
        health.set_ready(problem)
        # Logged on a change only: a probe every few seconds must not fill the log.
        if problem is None and not was_ready:
            log.info("ready")
        elif problem is not None and was_ready:
            log.warning("not ready", reason=problem)
        was_ready = problem is None
        await asyncio.sleep(READINESS_CHECK_SECONDS)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    # A probe that hangs up early must not keep the process from exiting.
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        # Kubernetes probes every few seconds; a line per request would drown the real logs.
        return None


def probe_app(health: Health) -> WSGIApplication:
    """The WSGI application behind the probe server: /metrics, /readyz, /healthz."""
    metrics = metrics_app()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == METRICS_PATH:
            return metrics(environ, start_response)
        if path == READY_PATH:
            problem = health.readiness()
        elif path == LIVE_PATH:
            problem = health.liveness()
        else:
            return _answer(start_response, "404 Not Found", "try /metrics, /readyz or /healthz")
        if problem is None:
            return _answer(start_response, "200 OK", "ok")
        return _answer(start_response, "503 Service Unavailable", problem)

    return app


def _answer(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    body = (text + "\n").encode()
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [body]


class ProbeServer:
    """The probe server on `port` of every interface, in a daemon thread of its own."""

    def __init__(self, health: Health, port: int, host: str = "0.0.0.0") -> None:
        # Binds now, so a busy port fails here, in the caller, not in the thread.
        self._server = make_server(
            host,
            port,
            probe_app(health),
            server_class=_ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="probe-server", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
