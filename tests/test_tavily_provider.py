"""TavilySearch with the real tavily-python client against a local Tavily-speaking server.

A search is two stages over real HTTP: /search ranks the hits, /extract fetches each hit's
page. Both stages map failures alike, and both report progress that a later attempt resumes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import socket
import string
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError

from research_search.providers import SearchProgress, SearchProvider
from research_search.providers.tavily import TavilySearch
from research_shared import errors
from research_shared.models import MAX_HIT_CONTENT_CHARS, MAX_SNIPPET_CHARS
from research_shared.redaction import MASK
from tests.helpers.fakes.faultserver import Fault
from tests.helpers.fakes.tavily_server import EXCERPT_CHARS, FakeTavilyServer

KEY = "tvly-test-9f8e7d6c5b4a39281706"
LONG_PAGE = "Temporal durable execution replays workflow history. " * 300

DOCUMENTS: list[dict[str, Any]] = [
    {
        "title": "Durable execution with Temporal",
        "url": "https://example.org/temporal-durable-execution",
        "content": LONG_PAGE,
    },
    {
        "title": "Workflow replay explained",
        "url": "https://example.org/replay",
        "content": "Temporal replays workflow code from its event history to rebuild state.",
    },
    {
        "title": "A page Tavily could not fetch",
        "url": "https://example.org/unfetchable",
        "content": "Temporal history excerpt only.",
        "raw_content": None,
    },
    {
        "title": "Sourdough baking",
        "url": "https://example.org/bread",
        "content": "Flour, water, salt and patience.",
    },
]


def _only_query(query: str) -> Any:
    return lambda path, body: body.get("query") == query


def _extract_of(url: str | None = None) -> Any:
    """A fault matcher for /extract calls (of one address, if given)."""
    return lambda path, body: path == "/extract" and (url is None or url in body.get("urls", []))


@pytest.fixture(scope="module")
def server() -> Iterator[FakeTavilyServer]:
    with FakeTavilyServer(api_key=KEY, documents=DOCUMENTS) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh_server(server: FakeTavilyServer) -> None:
    server.reset()


@pytest.fixture
async def tavily(server: FakeTavilyServer) -> AsyncIterator[TavilySearch]:
    provider = TavilySearch(SecretStr(KEY), base_url=server.base_url, timeout_seconds=0.5)
    yield provider
    await provider.aclose()


async def _failure(provider: TavilySearch, query: str = "temporal replay") -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await provider.search(query, max_results=3)
    return caught.value


def _assert_failure(error: ApplicationError, error_type: str, non_retryable: bool) -> None:
    """The provider's one error: its type and retryability, naming Tavily and not the key."""
    assert error.type == error_type
    assert error.non_retryable is non_retryable
    assert "Tavily" in error.message
    assert KEY not in error.message


def _requests(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "research_provider_requests_total", {"provider": "tavily", "outcome": outcome}
    )
    return value or 0.0


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


# -- success -----------------------------------------------------------------------------


async def test_hits_are_mapped_ranked_and_capped(
    tavily: TavilySearch, server: FakeTavilyServer
) -> None:
    hits = await tavily.search("temporal workflow history replay", max_results=5)

    assert [hit.url for hit in hits] == [
        "https://example.org/replay",
        "https://example.org/temporal-durable-execution",
        "https://example.org/unfetchable",
    ]
    replay, durable, unfetchable = hits
    assert replay.title == "Workflow replay explained"
    assert replay.content == DOCUMENTS[1]["content"]
    assert replay.snippet == DOCUMENTS[1]["content"]
    assert replay.score == 1.0
    assert 0 < durable.score < replay.score
    # The page text comes from raw_content and is capped; the snippet from Tavily's excerpt.
    assert len(LONG_PAGE) > MAX_HIT_CONTENT_CHARS > EXCERPT_CHARS > MAX_SNIPPET_CHARS
    assert durable.content == LONG_PAGE[:MAX_HIT_CONTENT_CHARS]
    assert durable.snippet == LONG_PAGE[:MAX_SNIPPET_CHARS]
    # A page Tavily cannot fetch leaves the excerpt as the content.
    assert unfetchable.content == "Temporal history excerpt only."
    assert server.queries_received() == ["temporal workflow history replay"]
    # One /extract call per hit, each for one page.
    assert sorted(server.extracts_received()) == sorted(hit.url for hit in hits)
    assert len(server.calls_to("/extract")) == 3


async def test_request_carries_the_key_and_the_options_as_the_client_sends_them(
    tavily: TavilySearch, server: FakeTavilyServer
) -> None:
    hits = await tavily.search("temporal", max_results=2)

    (call,) = server.calls_to("/search")
    assert _header(call.headers, "Authorization") == f"Bearer {KEY}"
    assert KEY not in str(call.body)
    assert call.body["query"] == "temporal"
    assert call.body["max_results"] == 2
    assert call.body["search_depth"] == "basic"
    # Pages come from /extract, so the search does not ask for them.
    assert "include_raw_content" not in call.body
    extracts = server.calls_to("/extract")
    assert [c.body["urls"] for c in extracts] == [[hit.url] for hit in hits]
    for extract in extracts:
        assert _header(extract.headers, "Authorization") == f"Bearer {KEY}"
        assert KEY not in str(extract.body)
        assert extract.body["format"] == "text"
        assert extract.body["extract_depth"] == "basic"
        # The provider's 0.5 s is below the least /extract accepts.
        assert extract.body["timeout"] == 1.0


async def test_max_results_is_respected(tavily: TavilySearch, server: FakeTavilyServer) -> None:
    assert len(await tavily.search("temporal", max_results=1)) == 1
    assert len(await tavily.search("temporal", max_results=2)) == 2
    assert [call.body["max_results"] for call in server.calls_to("/search")] == [1, 2]


async def test_advanced_depth_and_derived_documents() -> None:
    with FakeTavilyServer(api_key=KEY) as fake:
        provider = TavilySearch(KEY, base_url=fake.base_url, search_depth="advanced")
        try:
            hits = await provider.search("quantum error correction", max_results=10)
        finally:
            await provider.aclose()
        (call,) = fake.calls_to("/search")

    assert call.body["search_depth"] == "advanced"
    assert {c.body["extract_depth"] for c in fake.calls_to("/extract")} == {"advanced"}
    assert len(hits) == 10
    assert len({hit.url for hit in hits}) == 10
    assert all("quantum error correction" in hit.content for hit in hits)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


async def test_provider_fits_the_protocol_and_hides_the_key(tavily: TavilySearch) -> None:
    provider: SearchProvider = tavily
    assert provider.name == "tavily"
    assert KEY not in repr(tavily)
    assert KEY not in str(vars(tavily))


async def test_success_is_counted(tavily: TavilySearch, server: FakeTavilyServer) -> None:
    before = _requests("ok")
    await tavily.search("temporal", max_results=1)
    # One search and one page.
    assert _requests("ok") == before + 2


# -- failures ----------------------------------------------------------------------------


async def test_wrong_key_is_a_non_retryable_auth_error(server: FakeTavilyServer) -> None:
    wrong = "tvly-wrong-0000111122223333"
    provider = TavilySearch(wrong, base_url=server.base_url, timeout_seconds=0.5)
    before = _requests(errors.PROVIDER_AUTH)
    try:
        error = await _failure(provider)
    finally:
        await provider.aclose()

    assert error.type == errors.PROVIDER_AUTH
    assert error.non_retryable
    assert "Tavily" in error.message
    assert "401" in error.message
    assert wrong not in error.message
    assert wrong not in str(error.details)
    assert error.__cause__ is None
    assert len(server.calls_to("/search")) == 1
    assert _requests(errors.PROVIDER_AUTH) == before + 1


async def test_echoed_key_is_redacted(tavily: TavilySearch, server: FakeTavilyServer) -> None:
    server.inject(Fault(status=401, body={"detail": {"error": f"Unknown key {KEY}"}}))
    error = await _failure(tavily)
    assert error.type == errors.PROVIDER_AUTH
    assert "Unknown key" in error.message
    assert KEY not in error.message


async def test_an_echoed_key_of_no_known_shape_is_redacted(server: FakeTavilyServer) -> None:
    """Only the exact configured value gives this key away: it has no prefix to match."""
    shapeless = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
    server.echo_rejected_key = True
    provider = TavilySearch(shapeless, base_url=server.base_url, timeout_seconds=0.5)
    try:
        error = await _failure(provider)
    finally:
        server.echo_rejected_key = False
        await provider.aclose()

    [call] = server.calls_to("/search")
    assert shapeless in str(call.answer)
    assert error.type == errors.PROVIDER_AUTH
    assert shapeless not in error.message
    assert f"invalid API key {MASK}" in error.message


async def test_empty_query_is_a_bad_request(tavily: TavilySearch, server: FakeTavilyServer) -> None:
    error = await _failure(tavily, query="   ")
    assert error.type == errors.PROVIDER_BAD_REQUEST
    assert error.non_retryable
    assert "Query is missing" in error.message
    assert len(server.calls_to("/search")) == 1


@pytest.mark.parametrize(
    ("fault", "error_type", "non_retryable"),
    [
        (Fault(status=400), errors.PROVIDER_BAD_REQUEST, True),
        (Fault(status=422), errors.PROVIDER_BAD_REQUEST, True),
        (Fault(status=403), errors.PROVIDER_AUTH, True),
        (Fault(status=432), errors.PROVIDER_QUOTA, True),
        (Fault(status=433), errors.PROVIDER_QUOTA, True),
        (Fault(status=500), errors.PROVIDER_UNAVAILABLE, False),
        (Fault(status=503), errors.PROVIDER_UNAVAILABLE, False),
        (Fault(delay=2.0), errors.PROVIDER_UNAVAILABLE, False),
        (Fault(drop=True), errors.PROVIDER_UNAVAILABLE, False),
    ],
    ids=["400", "422", "403", "432", "433", "500", "503", "timeout", "dropped"],
)
async def test_fault_maps_to_one_request_and_one_error(
    tavily: TavilySearch,
    server: FakeTavilyServer,
    fault: Fault,
    error_type: str,
    non_retryable: bool,
) -> None:
    # A copy: the server consumes a fault, and parametrize shares one object.
    server.inject(dataclasses.replace(fault))
    before = _requests(error_type)

    _assert_failure(await _failure(tavily), error_type, non_retryable)
    # One attempt, one request: retrying belongs to Temporal, not to the client.
    assert len(server.calls_to("/search")) == 1
    assert server.calls_to("/extract") == []
    assert _requests(error_type) == before + 1


async def test_rate_limit_is_retryable_after_retry_after(
    tavily: TavilySearch, server: FakeTavilyServer
) -> None:
    server.inject(Fault(status=429, retry_after=7))
    error = await _failure(tavily)

    assert error.type == errors.PROVIDER_RATE_LIMITED
    assert not error.non_retryable
    assert error.next_retry_delay == timedelta(seconds=7)
    assert "Tavily" in error.message
    assert len(server.calls_to("/search")) == 1


async def test_rate_limit_without_retry_after_leaves_the_delay_to_the_policy(
    tavily: TavilySearch, server: FakeTavilyServer
) -> None:
    server.inject(Fault(status=429))
    error = await _failure(tavily)
    assert error.type == errors.PROVIDER_RATE_LIMITED
    assert error.next_retry_delay is None


async def test_retry_after_belongs_to_its_own_call(server: FakeTavilyServer) -> None:
    # Answers that arrive together interleave their hooks and error mapping, so a provider
    # that kept only "the last response" would hand one call's delay to another. Four calls
    # stay within the fake's listen backlog of five; the longer timeout keeps a slow
    # machine from turning a 429 into a timeout.
    queries = [f"query {n}" for n in range(1, 5)]
    for n, query in enumerate(queries, start=1):
        server.inject(Fault(status=429, retry_after=n, delay=0.1, match=_only_query(query)))
    provider = TavilySearch(KEY, base_url=server.base_url, timeout_seconds=10)
    try:
        failures = await asyncio.gather(*(_failure(provider, query=query) for query in queries))
    finally:
        await provider.aclose()

    assert [failure.type for failure in failures] == [errors.PROVIDER_RATE_LIMITED] * 4
    assert [failure.next_retry_delay for failure in failures] == [
        timedelta(seconds=n) for n in range(1, 5)
    ]
    assert sorted(server.queries_received()) == sorted(queries)


async def test_unreachable_server_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = TavilySearch(KEY, base_url=f"http://127.0.0.1:{port}", timeout_seconds=0.5)
    try:
        error = await _failure(provider)
    finally:
        await provider.aclose()
    assert error.type == errors.PROVIDER_UNAVAILABLE
    assert not error.non_retryable
    assert "Tavily" in error.message


@pytest.mark.parametrize(
    "kwargs",
    [
        {"api_key": ""},
        {"timeout_seconds": 0},
        {"timeout_seconds": 500},
        {"search_depth": "deep"},
        {"extract_concurrency": 0},
        {"extract_concurrency": 11},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"api_key": KEY, **kwargs}
    with pytest.raises(ValueError) as caught:
        TavilySearch(**arguments)
    assert KEY not in str(caught.value)


# -- the page stage --------------------------------------------------------------------

REPLAY_URL = "https://example.org/replay"
DURABLE_URL = "https://example.org/temporal-durable-execution"
UNFETCHABLE_URL = "https://example.org/unfetchable"


@pytest.mark.parametrize(
    ("fault", "error_type", "non_retryable"),
    [
        (Fault(status=401), errors.PROVIDER_AUTH, True),
        (Fault(status=403), errors.PROVIDER_AUTH, True),
        (Fault(status=432), errors.PROVIDER_QUOTA, True),
        (Fault(status=429, retry_after=5), errors.PROVIDER_RATE_LIMITED, False),
        (Fault(status=500), errors.PROVIDER_UNAVAILABLE, False),
        (Fault(status=503), errors.PROVIDER_UNAVAILABLE, False),
        (Fault(delay=2.0), errors.PROVIDER_UNAVAILABLE, False),
        (Fault(drop=True), errors.PROVIDER_UNAVAILABLE, False),
    ],
    ids=["401", "403", "432", "429", "500", "503", "timeout", "dropped"],
)
async def test_extract_failure_maps_like_a_search_failure(
    tavily: TavilySearch,
    server: FakeTavilyServer,
    fault: Fault,
    error_type: str,
    non_retryable: bool,
) -> None:
    server.inject(dataclasses.replace(fault, match=_extract_of()))
    before = _requests(error_type)

    error = await _failure(tavily)

    _assert_failure(error, error_type, non_retryable)
    assert error.__cause__ is None
    if fault.retry_after is not None:
        assert error.next_retry_delay == timedelta(seconds=fault.retry_after)
    assert len(server.calls_to("/search")) == 1
    assert _requests(error_type) == before + 1


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_a_page_refused_by_extract_keeps_its_excerpt(
    tavily: TavilySearch, server: FakeTavilyServer, status: int
) -> None:
    server.inject(Fault(status=status, match=_extract_of(DURABLE_URL)))

    hits = await tavily.search("temporal workflow history replay", max_results=2)

    by_url = {hit.url: hit for hit in hits}
    assert by_url[DURABLE_URL].content == LONG_PAGE[:EXCERPT_CHARS]
    assert by_url[DURABLE_URL].snippet == LONG_PAGE[:MAX_SNIPPET_CHARS]
    assert by_url[REPLAY_URL].content == DOCUMENTS[1]["content"]
    assert sorted(server.extracts_received()) == sorted(by_url)


async def test_a_page_tavily_cannot_fetch_is_not_an_error(
    tavily: TavilySearch, server: FakeTavilyServer
) -> None:
    (hit,) = await tavily.search("excerpt", max_results=1)

    assert hit.url == UNFETCHABLE_URL
    assert hit.content == "Temporal history excerpt only."
    assert server.extracts_received() == [UNFETCHABLE_URL]
    (call,) = server.calls_to("/extract")
    assert call.outcome == "ok"


async def test_huge_pages_are_capped() -> None:
    with FakeTavilyServer(api_key=KEY, page_chars=1_000_000, overfill=True) as fake:
        provider = TavilySearch(KEY, base_url=fake.base_url, timeout_seconds=10)
        try:
            hits = await provider.search("durable execution", max_results=4)
        finally:
            await provider.aclose()

    assert len(hits) == 4
    assert len(fake.extracts_received()) == 4
    assert all(len(hit.content) == MAX_HIT_CONTENT_CHARS for hit in hits)
    assert all(len(hit.snippet) <= MAX_SNIPPET_CHARS for hit in hits)


# -- progress --------------------------------------------------------------------------


async def test_progress_is_reported_after_each_unit_of_work(
    tavily: TavilySearch, server: FakeTavilyServer
) -> None:
    reports: list[SearchProgress] = []

    hits = await tavily.search(
        "temporal workflow history replay", max_results=3, on_progress=reports.append
    )

    # The search stage, then one report per page (a page that could not be fetched too).
    assert len(reports) == 1 + len(hits)
    first, last = reports[0], reports[-1]
    assert first.hits is not None and first.pages == {}
    assert [hit.url for hit in first.hits] == [hit.url for hit in hits]
    assert [len(report.pages) for report in reports] == [0, 1, 2, 3]
    assert last.pages[DURABLE_URL] == LONG_PAGE[:MAX_HIT_CONTENT_CHARS]
    assert last.pages[UNFETCHABLE_URL] == ""
    assert all(len(text) <= MAX_HIT_CONTENT_CHARS for text in last.pages.values())
    # Snapshots: a report is not changed by the work after it.
    assert reports[1].pages.keys() < last.pages.keys()


async def test_resumed_search_skips_the_work_already_done(
    tavily: TavilySearch, server: FakeTavilyServer
) -> None:
    query = "temporal workflow history replay"
    reports: list[SearchProgress] = []
    server.inject(Fault(status=503, match=_extract_of(UNFETCHABLE_URL)))
    provider = TavilySearch(KEY, base_url=server.base_url, extract_concurrency=1)
    try:
        with pytest.raises(ApplicationError):
            await provider.search(query, max_results=3, on_progress=reports.append)
        # With one call at a time, nothing is fetched after the failure.
        assert server.extracts_received() == [REPLAY_URL, DURABLE_URL, UNFETCHABLE_URL]
        done = reports[-1]
        assert set(done.pages) == {REPLAY_URL, DURABLE_URL}

        server.reset()
        hits = await provider.search(query, max_results=3, progress=done)
    finally:
        await provider.aclose()

    assert server.queries_received() == []
    assert server.extracts_received() == [UNFETCHABLE_URL]
    assert [hit.url for hit in hits] == [REPLAY_URL, DURABLE_URL, UNFETCHABLE_URL]
    assert hits[1].content == LONG_PAGE[:MAX_HIT_CONTENT_CHARS]


async def test_calls_under_way_when_one_fails_are_recorded(server: FakeTavilyServer) -> None:
    reports: list[SearchProgress] = []
    server.inject(Fault(status=503, match=_extract_of(REPLAY_URL)))
    provider = TavilySearch(KEY, base_url=server.base_url, extract_concurrency=3)
    try:
        error = await _failure_with(provider, reports)
    finally:
        await provider.aclose()

    assert error.type == errors.PROVIDER_UNAVAILABLE
    assert set(server.extracts_received()) == {REPLAY_URL, DURABLE_URL, UNFETCHABLE_URL}
    assert set(reports[-1].pages) == {DURABLE_URL, UNFETCHABLE_URL}


async def _failure_with(provider: TavilySearch, reports: list[SearchProgress]) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await provider.search(
            "temporal workflow history replay", max_results=3, on_progress=reports.append
        )
    return caught.value


async def test_progress_of_another_search_is_ignored(
    tavily: TavilySearch, server: FakeTavilyServer
) -> None:
    foreign = SearchProgress(
        query="sourdough", max_results=3, hits=[], pages={REPLAY_URL: "not this page"}
    )

    hits = await tavily.search("temporal workflow history replay", max_results=3, progress=foreign)

    assert len(hits) == 3
    assert server.queries_received() == ["temporal workflow history replay"]
    assert hits[0].content == DOCUMENTS[1]["content"]
