"""Connecting to Temporal the same way everywhere: the embedded dev server, self-hosted, Cloud."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from research_shared.redaction import register_secret
from research_shared.settings import TemporalSettings


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


def sdk_runtime(metrics_port: int) -> Runtime | None:
    """A runtime that serves the SDK's own metrics (task latencies, poll counts), if asked."""
    if not metrics_port:
        return None
    return Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"0.0.0.0:{metrics_port}"))
    )


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
