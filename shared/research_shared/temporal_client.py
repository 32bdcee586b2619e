"""Connecting to Temporal the same way everywhere: the embedded dev server, self-hosted, Cloud."""

from __future__ import annotations

import logging

from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.converter import DataConverter
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import TLSConfig
from temporalio.worker import WorkerDeploymentConfig

from research_shared.redaction import register_secret
from research_shared.settings import TemporalSettings, WorkerSettings


def tls_config(settings: TemporalSettings) -> TLSConfig | bool:
    """TLS options from settings: off, on with system roots, or mTLS with given files."""
    files = (settings.tls_cert, settings.tls_key, settings.tls_ca)
    if not settings.tls and not any(files) and settings.api_key is None:
        return False
    if not any(files) and settings.tls_server_name is None:
        return True
    return TLSConfig(
        client_cert=settings.tls_cert.read_bytes() if settings.tls_cert else None,
        client_private_key=settings.tls_key.read_bytes() if settings.tls_key else None,
        server_root_ca_cert=settings.tls_ca.read_bytes() if settings.tls_ca else None,
        domain=settings.tls_server_name,
    )


CORE_LOGGER = "temporalio.core"
"""The stdlib logger the SDK's Rust core writes to; its target is appended to the name."""


def _core_level(log_level: str) -> str:
    # The core is chatty below WARN (every poll, every activation); its INFO lines are worth
    # having only when someone asked for DEBUG.
    return "INFO" if log_level.upper() == "DEBUG" else "WARN"


def sdk_runtime(
    metrics_port: int, log_level: str = "INFO", *, forward_logs: bool = True
) -> Runtime:
    """The runtime a worker process runs on: the SDK's own metrics (task latencies, slots,
    polls) on `metrics_port` if it is not 0, and the core's log lines forwarded to the
    stdlib logger `temporalio.core`, so they pass the same formatter and redactor as every
    other line (left alone, the core writes its own text format straight to stderr).

    Forwarding calls into Python from the core's threads, so a process that forwards must
    leave without interpreter finalization, as `deep-research worker` does
    (`research_cli.main.exit_without_finalizing`); `forward_logs=False` is for a runtime
    inside a process that finalizes normally (a test runner)."""
    logging_config = LoggingConfig(
        filter=TelemetryFilter(core_level=_core_level(log_level), other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger(CORE_LOGGER))
        if forward_logs
        else None,
    )
    metrics = PrometheusConfig(bind_address=f"0.0.0.0:{metrics_port}") if metrics_port else None
    return Runtime(telemetry=TelemetryConfig(logging=logging_config, metrics=metrics))


async def connect(
    settings: TemporalSettings,
    runtime: Runtime | None = None,
    data_converter: DataConverter | None = None,
    *,
    lazy: bool = False,
) -> Client:
    """A client with the project's data converter. An API key implies TLS (Temporal Cloud).

    `data_converter` is the process's (`research_shared.payloads.open_payloads`); without
    one, it is built from the environment's `PayloadSettings` here. A `lazy` client connects
    on its first call instead of now: a server (the HTTP API) can then start, and say it is
    not ready, while Temporal is away. The API key is registered for redaction first, so a
    connection error that quotes it is logged without it.
    """
    register_secret(settings.api_key)
    if data_converter is None:
        from research_shared.payloads import open_payloads

        data_converter = open_payloads().converter
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        tls=tls_config(settings),
        data_converter=data_converter,
        runtime=runtime,
        lazy=lazy,
    )


def deployment_config(settings: WorkerSettings) -> WorkerDeploymentConfig | None:
    """Worker Versioning options, when RESEARCH_DEPLOYMENT_NAME and RESEARCH_BUILD_ID are set.

    Off by default: an unversioned worker takes every task of its queue, which is what the
    embedded stack and a single-version deployment want. A versioned orchestrator takes new
    runs once its version is made current (`temporal worker deployment set-current-version`),
    and each run stays on the version it started on (`PINNED`), so an old run never replays
    on code that would not replay its history. See docs/operations.md.

    The behaviour is the worker's default rather than the workflow decorator's: the server
    refuses a workflow task completed with a versioning behaviour by an unversioned worker,
    so a decorator that named one would break every unversioned worker.
    """
    if settings.deployment_name is None or settings.build_id is None:
        return None
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(settings.deployment_name, settings.build_id),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.PINNED,
    )
