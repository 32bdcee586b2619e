"""Web search through Tavily, with the official `tavily-python` async client.

The client is handed an `httpx.AsyncClient` of ours for two reasons. It turns a 429 into an
exception that carries neither the status nor the headers, so Retry-After would be lost,
and it folds 403, 432 and 433 into one `ForbiddenError`, so a bad key and an exhausted plan
would look alike. A response hook on our client records the status and Retry-After of each
call, and the error mapping reads them from there. Neither tavily-python nor httpx retries
on its own: Temporal owns retries, so one activity attempt is one HTTP request.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import SecretStr
from tavily import AsyncTavilyClient
from tavily.errors import (
    BadRequestError,
    ForbiddenError,
    InvalidAPIKeyError,
    UsageLimitExceededError,
)
from tavily.errors import TimeoutError as TavilyTimeoutError
from temporalio.exceptions import ApplicationError

from research_shared.metrics import PROVIDER_REQUESTS
from research_shared.models import MAX_HIT_CONTENT_CHARS, MAX_SNIPPET_CHARS, SearchHit
from research_shared.provider_errors import from_http_status, parse_retry_after, unavailable

DEFAULT_BASE_URL = "https://api.tavily.com"
DEFAULT_TIMEOUT_SECONDS = 30.0
# Tavily refuses longer waits, and the client silently caps its timeout at this value.
MAX_TIMEOUT_SECONDS = 120.0
PROVIDER_LABEL = "Tavily"

SearchDepth = Literal["basic", "advanced"]
_SEARCH_DEPTHS: tuple[str, ...] = ("basic", "advanced")

# The status each tavily-python exception stands for, used only if the response hook did not
# see the answer (it always should; this keeps the mapping total).
_FALLBACK_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (InvalidAPIKeyError, 401),
    (ForbiddenError, 403),
    (BadRequestError, 400),
    (UsageLimitExceededError, 429),
)


@dataclass
class _Exchange:
    """What the server answered to one search call, as seen by the response hook."""

    status: int | None = None
    retry_after: str | None = None


# One worker runs many searches at once on one client, so "the last response" must be per
# call: each search sets its own record in its task's context, and the hook, which httpx
# runs inside the same task, writes into it.
_CURRENT_EXCHANGE: ContextVar[_Exchange | None] = ContextVar(
    "research_search_tavily_exchange", default=None
)


async def _record_response(response: httpx.Response) -> None:
    exchange = _CURRENT_EXCHANGE.get()
    if exchange is not None:
        exchange.status = response.status_code
        exchange.retry_after = response.headers.get("Retry-After")


class TavilySearch:
    """`SearchProvider` backed by Tavily's /search endpoint.

    Hits carry page text: Tavily is asked for the raw page content, which becomes
    `SearchHit.content` (capped), while Tavily's query-focused excerpt becomes the snippet.
    Every failure is raised as an `ApplicationError` from `research_shared.provider_errors`,
    and the API key appears in none of them.
    """

    name = "tavily"

    def __init__(
        self,
        api_key: SecretStr | str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        search_depth: SearchDepth = "basic",
    ) -> None:
        secret = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        if not secret.get_secret_value().strip():
            # Without a key tavily-python would switch to its keyless mode, which is not a
            # configuration this service supports.
            raise ValueError("the Tavily API key is empty")
        if not (math.isfinite(timeout_seconds) and 0 < timeout_seconds <= MAX_TIMEOUT_SECONDS):
            raise ValueError(
                f"the Tavily timeout must be in (0, {MAX_TIMEOUT_SECONDS:g}] seconds, "
                f"got {timeout_seconds!r}"
            )
        if search_depth not in _SEARCH_DEPTHS:
            raise ValueError(f"search_depth must be one of {_SEARCH_DEPTHS}, got {search_depth!r}")
        self._api_key = secret
        self._base_url = base_url.rstrip("/")
        self._timeout_seconds = float(timeout_seconds)
        self._search_depth: SearchDepth = search_depth
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            timeout=self._timeout_seconds,
            # No transport of our own: httpx's default makes no retries (Temporal retries the
            # activity with its own backoff), and only the default honours HTTPS_PROXY.
            event_hooks={"response": [_record_response]},
        )
        self._client = AsyncTavilyClient(
            api_key=secret.get_secret_value(),
            api_base_url=self._base_url,
            client=self._http,
        )

    def __repr__(self) -> str:
        return (
            f"TavilySearch(base_url={self._base_url!r}, timeout_seconds={self._timeout_seconds:g}, "
            f"search_depth={self._search_depth!r})"
        )

    async def search(self, query: str, max_results: int) -> list[SearchHit]:
        """Search the web; at most `max_results` hits, best first."""
        exchange = _Exchange()
        token = _CURRENT_EXCHANGE.set(exchange)
        try:
            answer: Any = await self._client.search(
                query,
                search_depth=self._search_depth,
                max_results=max_results,
                # Plain text rather than markdown: link syntax would eat into the content cap.
                include_raw_content="text",
                include_answer=False,
                include_images=False,
                timeout=self._timeout_seconds,
            )
            hits = self._hits_from(answer, max_results)
        except ApplicationError as err:
            self._count(err.type or "ApplicationError")
            raise
        except Exception as err:
            error = self._application_error(err, exchange)
            self._count(error.type or "ApplicationError")
            # The cause is summarised in the message; chaining the original would carry its
            # text into the workflow history unredacted.
            raise error from None
        finally:
            _CURRENT_EXCHANGE.reset(token)
        self._count("ok")
        return hits

    async def aclose(self) -> None:
        """Release the connection pool."""
        await self._client.close()
        await self._http.aclose()

    # -- mapping -----------------------------------------------------------------------

    def _hits_from(self, answer: Any, max_results: int) -> list[SearchHit]:
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise unavailable(PROVIDER_LABEL, "the answer has no list of results")
        hits: list[SearchHit] = []
        for result in results:
            if len(hits) >= max_results:
                break
            # A result without an address cannot be cited, so it is not a source.
            if not isinstance(result, dict) or not isinstance(result.get("url"), str):
                continue
            url = result["url"].strip()
            if not url:
                continue
            excerpt = _text(result.get("content"))
            raw = _text(result.get("raw_content"))
            hits.append(
                SearchHit(
                    title=_text(result.get("title")).strip() or url,
                    url=url,
                    snippet=excerpt[:MAX_SNIPPET_CHARS],
                    content=(raw if raw.strip() else excerpt)[:MAX_HIT_CONTENT_CHARS],
                    score=_score(result.get("score")),
                )
            )
        return hits

    def _application_error(self, err: Exception, exchange: _Exchange) -> ApplicationError:
        if isinstance(err, TavilyTimeoutError | httpx.TimeoutException):
            return unavailable(
                PROVIDER_LABEL, f"no answer within {self._timeout_seconds:g} seconds"
            )
        if isinstance(err, httpx.HTTPStatusError):
            response = err.response
            return from_http_status(
                PROVIDER_LABEL,
                response.status_code,
                self._redact(_detail_of(response)),
                parse_retry_after(response.headers.get("Retry-After")),
            )
        if isinstance(err, httpx.TransportError):
            return unavailable(PROVIDER_LABEL, self._redact(f"{type(err).__name__}: {err}"))
        for error_class, fallback_status in _FALLBACK_STATUS:
            if isinstance(err, error_class):
                return from_http_status(
                    PROVIDER_LABEL,
                    exchange.status or fallback_status,
                    self._redact(str(err)),
                    parse_retry_after(exchange.retry_after),
                )
        # A 200 whose body is not JSON (a proxy's error page), or a status the client does
        # not handle: the service is not answering as Tavily, which retrying may fix.
        status = f"HTTP {exchange.status}, " if exchange.status is not None else ""
        return unavailable(
            PROVIDER_LABEL,
            self._redact(f"unexpected answer ({status}{type(err).__name__}: {err})"),
        )

    def _redact(self, text: str) -> str:
        # Servers sometimes echo a rejected key back; it must not reach the history.
        return text.replace(self._api_key.get_secret_value(), "***")

    def _count(self, outcome: str) -> None:
        PROVIDER_REQUESTS.labels(provider=self.name, outcome=outcome).inc()


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _score(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0.0
    try:
        score = float(value)
    except ValueError:
        return 0.0
    return score if math.isfinite(score) else 0.0


def _detail_of(response: httpx.Response) -> str:
    """Tavily's error text (`{"detail": {"error": ...}}`), or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, dict) and isinstance(detail.get("error"), str):
            return str(detail["error"])
        if isinstance(detail, str):
            return detail
        if isinstance(body.get("error"), str):
            return str(body["error"])
    return ""
