"""Request counts and latencies by route and status, for `/metrics`.

Routes are labelled by their template (`/v1/research/{id}`), never the path itself, so a
scan of random paths cannot grow the number of series without bound.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "research_api_requests_total",
    "HTTP requests answered by the API, by route template, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "research_api_request_duration_seconds",
    "Time to answer an HTTP request (to the end of the body, streams included).",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
UNMATCHED = "unmatched"


def route_template(app: Any, scope: Scope) -> str:
    """The template of the route `scope` went to, or `unmatched`."""
    routed = scope.get("route")  # set by the router on the request's scope
    if routed is not None and getattr(routed, "path", None):
        return str(routed.path)
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", UNMATCHED))
    return UNMATCHED


class RequestMetrics:
    """ASGI middleware that counts and times every HTTP request."""

    def __init__(self, app: ASGIApp, routes_of: Any) -> None:
        self.app = app
        self.routes_of = routes_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = route_template(self.routes_of, scope)
            method = str(scope.get("method", ""))
            REQUESTS.labels(route, method, str(status[0])).inc()
            LATENCY.labels(route, method).observe(time.perf_counter() - started)
