"""A local server that answers POST /search the way Tavily's API does.

It checks the key where tavily-python sends it (`Authorization: Bearer <key>`), validates
the body as Tavily does (400 with `{"detail": {"error": ...}}`), and answers with Tavily's
response shape, so the real `AsyncTavilyClient` runs its normal and its error paths against
it. Results come from a small document set ranked by term overlap with the query, or, with
no documents, from documents made up from the query so that every query finds something.
Faults (statuses, Retry-After, delays, dropped connections) come from `FakeProviderServer`.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Self

from tests.fakes.faultserver import FakeProviderServer

DEFAULT_API_KEY = "tvly-fake-0123456789abcdef"
# Tavily's query-focused excerpts run to several hundred characters; longer than the
# contract's snippet cap on purpose, so that cap is exercised.
EXCERPT_CHARS = 800
MAX_RESULTS_LIMIT = 20
DEFAULT_MAX_RESULTS = 5
DERIVED_DOCUMENTS = MAX_RESULTS_LIMIT
SEARCH_DEPTHS = ("basic", "advanced", "fast", "ultra-fast")
RAW_CONTENT_FORMATS = ("markdown", "text")

_WORD = re.compile(r"[a-z0-9]+")


def _terms(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _error(message: str) -> dict[str, Any]:
    """Tavily's error body; tavily-python reads `detail.error` into its exceptions."""
    return {"detail": {"error": message}}


class FakeTavilyServer(FakeProviderServer):
    """Tavily's /search endpoint over real HTTP, with fault injection from the base class.

    `documents` are mappings with `title`, `url`, `content` and optionally `raw_content`
    (the full page; when the key is absent the content stands in for it, and an explicit
    `None` makes the result carry no page text, as Tavily does for pages it cannot fetch).
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        documents: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.documents: list[dict[str, Any]] = [dict(doc) for doc in documents or ()]
        for doc in self.documents:
            missing = {"title", "url", "content"} - doc.keys()
            if missing:
                raise ValueError(f"document {doc!r} lacks {sorted(missing)}")

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

    # -- protocol ------------------------------------------------------------------------

    def answer(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
        if path != "/search":
            return 404, _error("Not Found")
        if not self._authorized(headers):
            return 401, _error("Unauthorized: missing or invalid API key.")
        problem = self._invalid(body)
        if problem:
            return 400, _error(problem)

        query: str = body["query"]
        max_results = body.get("max_results", DEFAULT_MAX_RESULTS)
        raw_wanted = body.get("include_raw_content", False) not in (False, None)
        ranked = self._ranked(query) if self.documents else self._derived(query)
        results = [
            {
                "title": doc["title"],
                "url": doc["url"],
                "content": str(doc["content"])[:EXCERPT_CHARS],
                "score": score,
                "raw_content": doc.get("raw_content", doc["content"]) if raw_wanted else None,
            }
            for doc, score in ranked[:max_results]
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

    def _authorized(self, headers: dict[str, str]) -> bool:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, token = value.partition(" ")
        return scheme.lower() == "bearer" and token.strip() == self.api_key

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
