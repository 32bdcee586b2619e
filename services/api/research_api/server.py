"""Entry point of the HTTP API (`deep-research api`): settings, the Temporal client, uvicorn.

The client is lazy: the API starts, answers `/healthz` and says on `/readyz` that it is not
ready while Temporal is away, instead of exiting into a restart loop. SIGTERM stops taking
connections and gives open requests `RESEARCH_GRACEFUL_SHUTDOWN_SECONDS` to finish; event
streams end then.
"""

from __future__ import annotations

import asyncio
import socket

import structlog
import uvicorn

from research_api.app import create_app
from research_api.auth import KeyRing
from research_shared.client import ResearchClient
from research_shared.logs import configure_logging
from research_shared.redaction import register_secret
from research_shared.serving import WorkerError
from research_shared.settings import ApiSettings, QueueSettings, TemporalSettings, WorkerSettings

log = structlog.get_logger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now so a busy port is one line, not a uvicorn traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise WorkerError(f"the API cannot listen on {host}:{port}: {err.strerror}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def run() -> None:
    # Every setting is read before anything starts, so a bad one stops the process at once.
    settings, temporal, queues = WorkerSettings(), TemporalSettings(), QueueSettings()
    api = ApiSettings()
    register_secret(api.api_keys)
    configure_logging(settings.log_level, settings.log_format, service="api")
    sock = bind(api.api_host, api.api_port)
    research = await ResearchClient.connect(
        temporal, task_queue=queues.orchestrator_queue, lazy=True
    )
    app = create_app(research, KeyRing(api.key_owners()))
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=max(1, int(settings.graceful_shutdown_seconds)),
    )
    server = uvicorn.Server(config)
    keys = "required" if api.key_owners() else "not required (loopback only)"
    log.info("api started", address=f"http://{api.api_host}:{api.api_port}", api_keys=keys)
    await server.serve(sockets=[sock])
    log.info("api stopped")


def main() -> None:
    asyncio.run(run())
