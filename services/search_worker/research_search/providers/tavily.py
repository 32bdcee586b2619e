"""Web search through Tavily, with the official `tavily-python` async client.

A search is done in two stages. POST /search ranks the hits and gives each a query-focused
excerpt; then POST /extract fetches the full text of each hit's page, one address per call,
a few calls at a time. Each stage and each page is a unit of progress: it is reported to the
caller, which heartbeats it, so an attempt that fails half-way is resumed by the next one
rather than redone (a page fetched once is not paid for twice).

The client is handed an `httpx.AsyncClient` of ours for two reasons. It turns a 429 into an
exception that carries neither the status nor the headers, so Retry-After would be lost,
and it folds 403, 432 and 433 into one `ForbiddenError`, so a bad key and an exhausted plan
would look alike. A response hook on our client records the status and Retry-After of each
call, and the error mapping reads them from there. Neither tavily-python nor httpx retries
on its own: Temporal owns retries, so one failing HTTP request fails the attempt.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
import structlog
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

from research_search.providers import (
    MAX_TITLE_CHARS,
    MAX_URL_CHARS,
    ProgressCallback,
    SearchProgress,
)
from research_search.providers._recording import RecordingAsyncClient
from research_shared import errors
from research_shared.metrics import PROVIDER_REQUESTS
from research_shared.models import MAX_HIT_CONTENT_CHARS, MAX_SNIPPET_CHARS, SearchHit
from research_shared.provider_errors import from_http_status, parse_retry_after, unavailable
from research_shared.recorded_calls import CallRecorder
from research_shared.redaction import register_secret
from research_shared.settings import TAVILY_MAX_TIMEOUT_SECONDS

DEFAULT_BASE_URL = "https://api.tavily.com"
DEFAULT_TIMEOUT_SECONDS = 30.0
# The settings refuse a longer timeout when they load; the provider holds to the same limit.
MAX_TIMEOUT_SECONDS = TAVILY_MAX_TIMEOUT_SECONDS
# /extract takes its timeout in the request body and accepts only this range; the client
# uses the same value for its own wait, so an extract call waits within it too.
EXTRACT_TIMEOUT_RANGE = (1.0, 60.0)
DEFAULT_EXTRACT_CONCURRENCY = 3
MAX_EXTRACT_CONCURRENCY = 10
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

log = structlog.get_logger(__name__)

_T = TypeVar("_T")


@dataclass
class _Exchange:
    """What the server answered to one call, as seen by the response hook."""

    status: int | None = None
    retry_after: str | None = None


# One worker runs many calls at once on one client, so "the last response" must be per
# call: each call sets its own record in its task's context, and the hook, which httpx runs
# inside the same task, writes into it.
_CURRENT_EXCHANGE: ContextVar[_Exchange | None] = ContextVar(
    "research_search_tavily_exchange", default=None
)


async def _record_response(response: httpx.Response) -> None:
    exchange = _CURRENT_EXCHANGE.get()
    if exchange is not None:
        exchange.status = response.status_code
        exchange.retry_after = response.headers.get("Retry-After")


class TavilySearch:
    """`SearchProvider` backed by Tavily's /search and /extract endpoints.

    Hits carry page text: /extract fetches each hit's page, which becomes `SearchHit.content`
    (capped), while Tavily's query-focused excerpt becomes the snippet. A page Tavily cannot
    fetch leaves its hit with the excerpt as content. Every failure is raised as an
    `ApplicationError` from `research_shared.provider_errors`, which redacts what the server
    said; the key is registered with `research_shared.redaction`, so it appears in none of
    them even when the server echoes it back.
    """

    name = "tavily"

    def __init__(
        self,
        api_key: SecretStr | str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        search_depth: SearchDepth = "basic",
        extract_concurrency: int = DEFAULT_EXTRACT_CONCURRENCY,
        recorder: CallRecorder | None = None,
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
        if (
            isinstance(extract_concurrency, bool)
            or not isinstance(extract_concurrency, int)
            or not 1 <= extract_concurrency <= MAX_EXTRACT_CONCURRENCY
        ):
            raise ValueError(
                f"extract_concurrency must be an integer in [1, {MAX_EXTRACT_CONCURRENCY}], "
                f"got {extract_concurrency!r}"
            )
        register_secret(secret)
        self._base_url = base_url.rstrip("/")
        self._timeout_seconds = float(timeout_seconds)
        low, high = EXTRACT_TIMEOUT_RANGE
        self._extract_timeout_seconds = min(max(self._timeout_seconds, low), high)
        self._search_depth: SearchDepth = search_depth
        self._extract_concurrency = extract_concurrency
        self._http = RecordingAsyncClient(
            base_url=self._base_url,
            timeout=self._timeout_seconds,
            # No transport of our own: httpx's default makes no retries (Temporal retries the
            # activity with its own backoff), and only the default honours HTTPS_PROXY.
            event_hooks={"response": [_record_response]},
            # Each /search and /extract answer is recorded, so a retry does not pay again.
            recorder=recorder,
        )
        self._client = AsyncTavilyClient(
            api_key=secret.get_secret_value(),
            api_base_url=self._base_url,
            client=self._http,
        )

    def __repr__(self) -> str:
        return (
            f"TavilySearch(base_url={self._base_url!r}, timeout_seconds={self._timeout_seconds:g}, "
            f"search_depth={self._search_depth!r}, "
            f"extract_concurrency={self._extract_concurrency})"
        )

    async def search(
        self,
        query: str,
        max_results: int,
        progress: SearchProgress | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[SearchHit]:
        """Search the web; at most `max_results` hits, best first, with their pages' text.

        `progress` from an earlier attempt of the same search skips the work it records;
        `on_progress` gets a snapshot after the search stage and after each page.
        """
        if progress is not None and progress.belongs_to(query, max_results):
            state = progress.model_copy(deep=True)
        else:
            state = SearchProgress(query=query, max_results=max_results)

        def report() -> None:
            if on_progress is not None:
                on_progress(_snapshot(state))

        if state.hits is None:
            state.hits = await self._call(
                lambda: self._client.search(
                    query,
                    search_depth=self._search_depth,
                    max_results=max_results,
                    include_answer=False,
                    include_images=False,
                    timeout=self._timeout_seconds,
                ),
                lambda answer: self._hits_from(answer, max_results),
                self._timeout_seconds,
            )
            report()
        await self._fetch_pages(state.hits, state.pages, report)
        return [_with_page(hit, state.pages.get(hit.url, "")) for hit in state.hits]

    async def aclose(self) -> None:
        """Release the connection pool."""
        await self._client.close()
        await self._http.aclose()

    # -- stages ------------------------------------------------------------------------

    async def _fetch_pages(
        self, hits: list[SearchHit], pages: dict[str, str], report: Callable[[], None]
    ) -> None:
        """Fetch the page of every hit not in `pages` yet, recording each as it arrives.

        After a failure no new call is started, but the calls under way are let finish, so
        what they fetched is recorded for the next attempt. The first failure is raised.
        """
        missing = [hit.url for hit in hits if hit.url not in pages]
        if not missing:
            return
        gate = asyncio.Semaphore(self._extract_concurrency)
        failures: list[ApplicationError] = []

        async def fetch(url: str) -> None:
            async with gate:
                if failures:
                    return
                try:
                    text = await self._page_text(url)
                except ApplicationError as err:
                    failures.append(err)
                    return
            pages[url] = text
            report()

        async with asyncio.TaskGroup() as group:
            for url in missing:
                group.create_task(fetch(url))
        if failures:
            raise failures[0]

    async def _page_text(self, url: str) -> str:
        """The text of one page, capped; empty when Tavily could not fetch it."""
        try:
            return await self._call(
                lambda: self._client.extract(
                    [url],
                    extract_depth=self._search_depth,
                    # Plain text rather than markdown: link syntax would eat into the cap.
                    format="text",
                    include_images=False,
                    timeout=self._extract_timeout_seconds,
                ),
                lambda answer: _page_from(answer, url),
                self._extract_timeout_seconds,
            )
        except ApplicationError as err:
            # A refused address (malformed, or one Tavily will not fetch) is a page without
            # text, not a failed search: the hit keeps its excerpt.
            if err.type != errors.PROVIDER_BAD_REQUEST:
                raise
            log.warning("page text unavailable", url=url, reason=err.message)
            return ""

    async def _call(
        self,
        request: Callable[[], Awaitable[Any]],
        parse: Callable[[Any], _T],
        timeout_seconds: float,
    ) -> _T:
        """One HTTP call to Tavily, its answer parsed, its failure mapped and counted."""
        exchange = _Exchange()
        token = _CURRENT_EXCHANGE.set(exchange)
        try:
            result = parse(await request())
        except ApplicationError as err:
            self._count(err.type or "ApplicationError")
            raise
        except Exception as err:
            error = self._application_error(err, exchange, timeout_seconds)
            self._count(error.type or "ApplicationError")
            # The cause is summarised in the message; chaining the original would carry its
            # text into the workflow history unredacted.
            raise error from None
        finally:
            _CURRENT_EXCHANGE.reset(token)
        self._count("ok")
        return result

    # -- mapping -----------------------------------------------------------------------

    def _hits_from(self, answer: Any, max_results: int) -> list[SearchHit]:
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise unavailable(PROVIDER_LABEL, "the answer has no list of results")
        hits: list[SearchHit] = []
        seen: set[str] = set()
        for result in results:
            if len(hits) >= max_results:
                break
            # A result without an address cannot be cited, so it is not a source.
            if not isinstance(result, dict) or not isinstance(result.get("url"), str):
                continue
            url = result["url"].strip()
            if not url or len(url) > MAX_URL_CHARS or url in seen:
                continue
            seen.add(url)
            excerpt = _text(result.get("content"))
            hits.append(
                SearchHit(
                    title=(_text(result.get("title")).strip() or url)[:MAX_TITLE_CHARS],
                    url=url,
                    snippet=excerpt[:MAX_SNIPPET_CHARS],
                    # Until its page is fetched, or if it cannot be, a hit's text is the
                    # excerpt.
                    content=excerpt[:MAX_HIT_CONTENT_CHARS],
                    score=_score(result.get("score")),
                )
            )
        return hits

    def _application_error(
        self, err: Exception, exchange: _Exchange, timeout_seconds: float
    ) -> ApplicationError:
        if isinstance(err, TavilyTimeoutError | httpx.TimeoutException):
            return unavailable(PROVIDER_LABEL, f"no answer within {timeout_seconds:g} seconds")
        if isinstance(err, httpx.HTTPStatusError):
            response = err.response
            return from_http_status(
                PROVIDER_LABEL,
                response.status_code,
                _detail_of(response),
                parse_retry_after(response.headers.get("Retry-After")),
            )
        if isinstance(err, httpx.TransportError):
            return unavailable(PROVIDER_LABEL, err)
        for error_class, fallback_status in _FALLBACK_STATUS:
            if isinstance(err, error_class):
                return from_http_status(
                    PROVIDER_LABEL,
                    exchange.status or fallback_status,
                    str(err),
                    parse_retry_after(exchange.retry_after),
                )
        # A 200 whose body is not JSON (a proxy's error page), or a status the client does
        # not handle: the service is not answering as Tavily, which retrying may fix.
        status = f"HTTP {exchange.status}, " if exchange.status is not None else ""
        return unavailable(
            PROVIDER_LABEL, f"unexpected answer ({status}{type(err).__name__}: {err})"
        )

    def _count(self, outcome: str) -> None:
        PROVIDER_REQUESTS.labels(provider=self.name, outcome=outcome).inc()


def _page_from(answer: Any, url: str) -> str:
    """The page text of a one-address /extract answer; empty if Tavily could not fetch it."""
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list):
        raise unavailable(PROVIDER_LABEL, "the extract answer has no list of results")
    pages = [r for r in results if isinstance(r, dict)]
    # Tavily may give the address back normalised (a trailing slash, a redirect's target);
    # with one address asked for, a single result is its page whatever it is called.
    match = next((r for r in pages if r.get("url") == url), pages[0] if len(pages) == 1 else None)
    if match is None:
        return ""
    return _text(match.get("raw_content"))[:MAX_HIT_CONTENT_CHARS]


def _snapshot(state: SearchProgress) -> SearchProgress:
    """A copy of `state` that its later progress does not change.

    Only the two containers are copied: hits are never changed in place (a page makes a new
    hit) and page texts are strings. A deep copy of every hit cost six times as much, six
    times a search.
    """
    hits = None if state.hits is None else list(state.hits)
    return state.model_copy(update={"hits": hits, "pages": dict(state.pages)})


def _with_page(hit: SearchHit, page: str) -> SearchHit:
    if not page.strip():
        return hit
    return hit.model_copy(update={"content": page[:MAX_HIT_CONTENT_CHARS]})


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
    """Tavily's error text (`{"detail": {"error": ...}}`), or the body.

    Not shortened here: `from_http_status` redacts it first, then cuts it.
    """
    try:
        body = response.json()
    except ValueError:
        return response.text
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, dict) and isinstance(detail.get("error"), str):
            return str(detail["error"])
        if isinstance(detail, str):
            return detail
        if isinstance(body.get("error"), str):
            return str(body["error"])
    return ""
