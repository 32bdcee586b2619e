"""A local server that answers POST /search and POST /extract the way Tavily's API does.

It checks the key where tavily-python sends it (`Authorization: Bearer <key>`), validates
the body as Tavily does (400 with `{"detail": {"error": ...}}`), and answers with Tavily's
response shapes, so the real `AsyncTavilyClient` runs its normal and its error paths against
it. Search results come from a small document set ranked by term overlap with the query, or,
with no documents, from documents made up from the query so that every query finds
something. /extract serves the full text of any page it knows (a document, or a page a
search returned) and lists the other addresses under `failed_results`, as Tavily does for
pages it cannot fetch. Faults (statuses, Retry-After, delays, dropped connections) come from
`FakeProviderServer` and apply to both endpoints. With `echo_rejected_key`, a refused key is
quoted whole in the 401 body, as some servers do, to test that nothing passes it on.
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Self

from tests.helpers.fakes.faultserver import FakeProviderServer

DEFAULT_API_KEY = "tvly-fake-0123456789abcdef"
# Tavily's query-focused excerpts run to several hundred characters; longer than the
# contract's snippet cap on purpose, so that cap is exercised.
EXCERPT_CHARS = 800
MAX_RESULTS_LIMIT = 20
DEFAULT_MAX_RESULTS = 5
DERIVED_DOCUMENTS = MAX_RESULTS_LIMIT
SEARCH_DEPTHS = ("basic", "advanced", "fast", "ultra-fast")
RAW_CONTENT_FORMATS = ("markdown", "text")
EXTRACT_DEPTHS = ("basic", "advanced")
MAX_EXTRACT_URLS = 20
EXTRACT_TIMEOUT_RANGE = (1.0, 60.0)
# Mixed scripts, so limits counted in bytes of UTF-8 are exercised, not only in characters.
_LARGE_PAGE_LINE = "Replay: 耐久実行はワークフローの履歴を再生して、失われた状態を復元する。 "

_WORD = re.compile(r"[a-z0-9]+")


def _terms(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _error(message: str) -> dict[str, Any]:
    """Tavily's error body; tavily-python reads `detail.error` into its exceptions."""
    return {"detail": {"error": message}}


class FakeTavilyServer(FakeProviderServer):
    """Tavily's /search and /extract endpoints over real HTTP, with fault injection from the
    base class.

    `documents` are mappings with `title`, `url`, `content` and optionally `raw_content`
    (the full page; when the key is absent the content stands in for it, and an explicit
    `None` makes the page one Tavily cannot fetch: no raw content in search results, and a
    failed result from /extract).

    `page_chars` replaces every fetchable page by a deterministic text of that many
    characters, mixing scripts so that limits in bytes are exercised, for tests of answers
    too large to carry. `overfill` makes /search ignore `max_results` and answer with every
    result it has, as a misbehaving upstream might. `echo_rejected_key` quotes a refused key
    whole in the 401 answer.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        documents: Sequence[Mapping[str, Any]] | None = None,
        *,
        page_chars: int | None = None,
        overfill: bool = False,
        echo_rejected_key: bool = False,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.documents: list[dict[str, Any]] = [dict(doc) for doc in documents or ()]
        for doc in self.documents:
            missing = {"title", "url", "content"} - doc.keys()
            if missing:
                raise ValueError(f"document {doc!r} lacks {sorted(missing)}")
        if page_chars is not None and page_chars < 1:
            raise ValueError("page_chars must be positive")
        self.page_chars = page_chars
        self.overfill = overfill
        self.echo_rejected_key = echo_rejected_key
        # Pages that searches returned, by address, so /extract can serve made-up documents.
        self._served: dict[str, dict[str, Any]] = {}
        self._served_lock = threading.Lock()

    def worker_env(self) -> dict[str, str]:
        """The settings that point a search worker at this server."""
        return {
            "RESEARCH_SEARCH_PROVIDER": "tavily",
            "TAVILY_API_KEY": self.api_key,
            "TAVILY_BASE_URL": self.base_url,
        }

    def start(self) -> Self:
        super().start()
        return self

    def __enter__(self) -> Self:
        return self.start()

    def queries_received(self) -> list[str]:
        """The `query` of every /search request, in order of arrival."""
        return [
            call.body["query"]
            for call in self.calls_to("/search")
            if isinstance(call.body.get("query"), str)
        ]

    def extracts_received(self) -> list[str]:
        """Every address asked of /extract, in order of arrival (a call may ask several)."""
        urls: list[str] = []
        for call in self.calls_to("/extract"):
            asked = call.body.get("urls")
            if isinstance(asked, str):
                urls.append(asked)
            elif isinstance(asked, list):
                urls.extend(url for url in asked if isinstance(url, str))
        return urls

    def page_text(self, doc: Mapping[str, Any]) -> str | None:
        """The full text /extract serves for `doc`, or None if the page cannot be fetched."""
        page = doc.get("raw_content", doc["content"])
        if page is None:
            return None
        if self.page_chars is not None:
            header = f"{doc['title']} ({doc['url']})\n\n"
            repeats = self.page_chars // len(_LARGE_PAGE_LINE) + 1
            return (header + _LARGE_PAGE_LINE * repeats)[: self.page_chars]
        return str(page)

    # -- protocol ------------------------------------------------------------------------

    def answer(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
        if path not in ("/search", "/extract"):
            return 404, _error("Not Found")
        presented = self._presented_key(headers)
        if presented != self.api_key:
            if self.echo_rejected_key and presented:
                return 401, _error(f"Unauthorized: invalid API key {presented}.")
            return 401, _error("Unauthorized: missing or invalid API key.")
        if path == "/extract":
            return self._extract(body)
        return self._search(body)

    def _search(self, body: dict[str, Any]) -> tuple[int, Any]:
        problem = self._invalid(body)
        if problem:
            return 400, _error(problem)

        query: str = body["query"]
        max_results = body.get("max_results", DEFAULT_MAX_RESULTS)
        raw_wanted = body.get("include_raw_content", False) not in (False, None)
        ranked = self._ranked(query) if self.documents else self._derived(query)
        chosen = ranked if self.overfill else ranked[:max_results]
        with self._served_lock:
            self._served.update((doc["url"], doc) for doc, _ in chosen)
        results = [
            {
                "title": doc["title"],
                "url": doc["url"],
                "content": str(doc["content"])[:EXCERPT_CHARS],
                "score": score,
                "raw_content": self.page_text(doc) if raw_wanted else None,
            }
            for doc, score in chosen
        ]
        return 200, {
            "query": query,
            "follow_up_questions": None,
            "answer": self._answer_text(query, results) if body.get("include_answer") else None,
            "images": [],
            "results": results,
            "response_time": 0.42,
            "request_id": str(uuid.uuid4()),
        }

    def _extract(self, body: dict[str, Any]) -> tuple[int, Any]:
        problem = self._invalid_extract(body)
        if problem:
            return 400, _error(problem)
        urls = body["urls"] if isinstance(body["urls"], list) else [body["urls"]]
        results: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for url in urls:
            doc = self._known(url)
            page = self.page_text(doc) if doc is not None else None
            if page is None:
                failed.append({"url": url, "error": "Failed to fetch url"})
            else:
                results.append({"url": url, "raw_content": page, "images": []})
        return 200, {
            "results": results,
            "failed_results": failed,
            "response_time": 0.31,
            "request_id": str(uuid.uuid4()),
        }

    def _known(self, url: str) -> dict[str, Any] | None:
        for doc in self.documents:
            if doc["url"] == url:
                return doc
        with self._served_lock:
            return self._served.get(url)

    @staticmethod
    def _presented_key(headers: dict[str, str]) -> str | None:
        """The bearer key of a request, None without one."""
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    @staticmethod
    def _invalid(body: dict[str, Any]) -> str:
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            return "Query is missing or empty."
        max_results = body.get("max_results", DEFAULT_MAX_RESULTS)
        if (
            isinstance(max_results, bool)
            or not isinstance(max_results, int)
            or not 0 <= max_results <= MAX_RESULTS_LIMIT
        ):
            return f"max_results must be an integer between 0 and {MAX_RESULTS_LIMIT}."
        depth = body.get("search_depth", "basic")
        if depth not in SEARCH_DEPTHS:
            return f"Invalid search_depth. Must be one of: {', '.join(SEARCH_DEPTHS)}."
        raw = body.get("include_raw_content", False)
        if not isinstance(raw, bool) and raw not in RAW_CONTENT_FORMATS:
            return "include_raw_content must be a boolean, 'markdown' or 'text'."
        return ""

    @staticmethod
    def _invalid_extract(body: dict[str, Any]) -> str:
        urls = body.get("urls")
        listed = [urls] if isinstance(urls, str) else urls
        if (
            not isinstance(listed, list)
            or not listed
            or not all(isinstance(url, str) and url.strip() for url in listed)
        ):
            return "urls must be a URL or a non-empty list of URLs."
        if len(listed) > MAX_EXTRACT_URLS:
            return f"At most {MAX_EXTRACT_URLS} URLs can be extracted at once."
        if body.get("extract_depth", "basic") not in EXTRACT_DEPTHS:
            return f"Invalid extract_depth. Must be one of: {', '.join(EXTRACT_DEPTHS)}."
        if body.get("format", "markdown") not in RAW_CONTENT_FORMATS:
            return f"Invalid format. Must be one of: {', '.join(RAW_CONTENT_FORMATS)}."
        timeout = body.get("timeout")
        low, high = EXTRACT_TIMEOUT_RANGE
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not low <= timeout <= high
        ):
            return f"timeout must be between {low:g} and {high:g} seconds."
        if not isinstance(body.get("include_images", False), bool):
            return "include_images must be a boolean."
        return ""

    def _ranked(self, query: str) -> list[tuple[dict[str, Any], float]]:
        wanted = _terms(query)
        if not wanted:
            return []
        scored = []
        for index, doc in enumerate(self.documents):
            overlap = len(wanted & _terms(f"{doc['title']} {doc['content']}"))
            if overlap:
                scored.append((-overlap, index, doc))
        scored.sort(key=lambda item: (item[0], item[1]))
        return [(doc, round(-neg / len(wanted), 4)) for neg, _, doc in scored]

    @staticmethod
    def _derived(query: str) -> list[tuple[dict[str, Any], float]]:
        text = " ".join(query.split())
        slug = "-".join(sorted(_terms(text))[:6]) or "query"
        # Same query, same documents: tests and benchmarks can rely on the answer.
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        docs = []
        for i in range(DERIVED_DOCUMENTS):
            excerpt = (
                f"An overview of {text}, part {i + 1}: background, current findings and open "
                f"questions about {text}."
            )
            page = "\n\n".join(
                f"Section {n + 1} on {text}. This page ({digest}-{i}) discusses {text} from "
                f"angle {n + 1}, with sources and figures."
                for n in range(3)
            )
            docs.append(
                (
                    {
                        "title": f"{text} - perspective {i + 1}",
                        "url": f"https://{digest}.example.org/{slug}/{i + 1}",
                        "content": excerpt,
                        "raw_content": page,
                    },
                    round(0.95 - 0.03 * i, 4),
                )
            )
        return docs

    @staticmethod
    def _answer_text(query: str, results: list[dict[str, Any]]) -> str:
        return f"{len(results)} sources discuss {query}."
