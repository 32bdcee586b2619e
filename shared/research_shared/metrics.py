"""Prometheus metrics of the workers, served on RESEARCH_METRICS_PORT with the probes
(`research_shared.health`).

The Temporal SDK's own metrics (poll latency, schedule-to-start, task slots) are served by
the SDK's runtime on RESEARCH_SDK_METRICS_PORT; these are the application's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.types import WSGIApplication

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app
from temporalio.exceptions import ApplicationError

ACTIVITY_SECONDS = Histogram(
    "research_activity_duration_seconds",
    "Wall time of one activity attempt.",
    ["activity", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
ACTIVITY_IN_FLIGHT = Gauge(
    "research_activity_in_flight", "Activity attempts running now.", ["activity"]
)
PROVIDER_REQUESTS = Counter(
    "research_provider_requests_total",
    "Calls to a search or model provider, by outcome (ok or an error type).",
    ["provider", "outcome"],
)
LLM_TOKENS = Counter("research_llm_tokens_total", "Model tokens used.", ["step", "direction"])
SEARCH_HITS = Counter("research_search_hits_total", "Documents returned by searches.", ["provider"])
ANSWERS_REUSED = Counter(
    "research_provider_answers_reused_total",
    "Provider calls not made again: a retried attempt reused the answer recorded for them.",
    ["provider"],
)
SEARCH_CACHE_HITS = Counter(
    "research_search_cache_hits_total",
    "Searches answered from the cross-run cache (reuse_searches_within_seconds).",
    ["provider"],
)


def metrics_app() -> WSGIApplication:
    """The /metrics exposition of these metrics (and the process's), as prometheus_client
    serves it: text or OpenMetrics by the Accept header, gzip when asked."""
    app: WSGIApplication = make_wsgi_app()
    return app


@contextmanager
def track_activity(name: str) -> Iterator[None]:
    """Count an attempt as in flight and record its duration and outcome."""
    ACTIVITY_IN_FLIGHT.labels(name).inc()
    started = time.monotonic()
    outcome = "ok"
    try:
        yield
    except BaseException as err:
        # The error type the retry presets act on, when there is one.
        outcome = err.type if isinstance(err, ApplicationError) and err.type else type(err).__name__
        raise
    finally:
        ACTIVITY_IN_FLIGHT.labels(name).dec()
        ACTIVITY_SECONDS.labels(name, outcome).observe(time.monotonic() - started)
