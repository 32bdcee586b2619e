"""The local search provider: ranking, hostile queries, hit content and the contract's caps."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from research_search.corpus import default_index_path, match_expression
from research_search.providers import SearchProvider
from research_search.providers.local_corpus import LocalCorpusSearch
from research_shared import errors
from research_shared.models import MAX_HIT_CONTENT_CHARS, MAX_SNIPPET_CHARS
from tests.helpers.corpus import filler, shared_default_corpus, write, write_sample_docs


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    return write_sample_docs(tmp_path / "docs")


@pytest.fixture
async def search(docs: Path, tmp_path: Path) -> AsyncIterator[LocalCorpusSearch]:
    provider = await LocalCorpusSearch.open(docs, tmp_path / "index" / "docs.sqlite3")
    yield provider
    await provider.aclose()


@pytest.fixture(scope="module")
def default_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_default_corpus(tmp_path_factory)


async def test_provider_satisfies_the_protocol(search: LocalCorpusSearch) -> None:
    provider: SearchProvider = search
    assert provider.name == "local"


async def test_relevant_file_ranks_first(search: LocalCorpusSearch, docs: Path) -> None:
    hits = await search.search("How do I commit a transaction with sqlite in Python?", 5)

    assert hits[0].url == str((docs / "sqlite.md").resolve())
    assert hits[0].title == "SQLite transactions in Python"
    assert "commit()" in hits[0].content
    assert all(hit.score > 0 for hit in hits)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


async def test_other_formats_are_searchable(search: LocalCorpusSearch, docs: Path) -> None:
    http = await search.search("HTTPSConnection getresponse", 3)
    bread = await search.search("sourdough patience", 3)
    ignored = await search.search("notes pdf", 3)

    assert http[0].url == str((docs / "guides" / "http.markdown").resolve())
    assert bread[0].title == "Bread baking"
    assert bread[0].url == str((docs / "kitchen" / "bread.html").resolve())
    assert all(not hit.url.endswith(".pdf") for hit in ignored)


async def test_content_of_a_short_last_passage_takes_the_passages_before(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "tail"
    paragraphs = [filler(i) for i in range(20)]
    body = "\n\n".join(paragraphs) + "\n\nThe quetzal closes the book."
    write(folder, "book.md", "# A book\n\n" + body)
    provider = await LocalCorpusSearch.open(folder, tmp_path / "tail.sqlite3")

    [hit] = await provider.search("quetzal", 5)
    await provider.aclose()

    assert hit.content.endswith("The quetzal closes the book.")
    # Two passages of about a thousand characters before it fit under the cap as well.
    assert len(hit.content) > 2 * 1000
    assert len(hit.content) <= MAX_HIT_CONTENT_CHARS
    assert filler(19) in hit.content and filler(0) not in hit.content


async def test_deep_term_returns_its_passage(tmp_path: Path) -> None:
    folder = tmp_path / "long"
    paragraphs = [filler(i) for i in range(60)]
    paragraphs[47] = "The zymurgy chapter explains how yeast ferments sugar into alcohol."
    write(folder, "book.md", "# A long book\n\n" + "\n\n".join(paragraphs))
    provider = await LocalCorpusSearch.open(folder, tmp_path / "long.sqlite3")

    hits = await provider.search("zymurgy", 5)
    await provider.aclose()

    assert len(hits) == 1
    assert "zymurgy chapter" in hits[0].content
    assert "zymurgy" in hits[0].snippet
    assert filler(0) not in hits[0].content
    assert len(hits[0].content) <= MAX_HIT_CONTENT_CHARS


async def test_one_hit_per_file_and_max_results(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    for n in range(6):
        body = "\n\n".join(f"Kestrel note {n}.{i}: kestrels hover. " + filler(i) for i in range(12))
        write(folder, f"file{n}.md", f"# File {n}\n\n{body}")
    write(folder, "unrelated.txt", "Nothing about birds of prey here.")
    provider = await LocalCorpusSearch.open(folder, tmp_path / "many.sqlite3")

    three = await provider.search("kestrel", 3)
    all_hits = await provider.search("kestrel", 10)
    await provider.aclose()

    assert len(three) == 3
    assert len(all_hits) == 6
    assert len({hit.url for hit in all_hits}) == 6
    assert not any(hit.url.endswith("unrelated.txt") for hit in all_hits)


HOSTILE_QUERIES = [
    '"sqlite',
    'sqlite" transaction "',
    "sqlite AND OR NOT transaction",
    "NEAR(sqlite transaction, 2)",
    "(sqlite OR (commit",
    "sqlite* commit*",
    "-sqlite --commit",
    "title:sqlite body:commit",
    "^sqlite + commit {title}: [x]",
    "'; DROP TABLE files; --",
    "sqlite\x00transaction",
    "_ __ ___",
]


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
async def test_fts_syntax_in_queries_is_harmless(search: LocalCorpusSearch, query: str) -> None:
    hits = await search.search(query, 5)

    assert isinstance(hits, list)
    if "sqlite" in query:
        assert hits and hits[0].title == "SQLite transactions in Python"


async def test_random_punctuation_never_raises(search: LocalCorpusSearch) -> None:
    rng = random.Random(20240601)
    alphabet = [*"\"'()*-+:^{}[],.;!?<>/\\|&@#$%~` \t\n", "AND", "OR", "NOT", "NEAR"]
    alphabet += ["sqlite", "commit", "é", "日本", "_", "0"]
    for _ in range(300):
        query = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 25)))
        await search.search(query, 3)


def test_match_expression_quotes_terms_and_drops_noise() -> None:
    assert match_expression('What is the "http.client" AND sqlite3 NOT x?') == (
        '"http.client" OR "sqlite3"'
    )
    assert match_expression("Sqlite sqlite SQLITE") == '"sqlite"'


async def test_only_stop_words_returns_nothing(search: LocalCorpusSearch) -> None:
    assert await search.search("what is the of and how to", 5) == []
    assert await search.search("   ", 5) == []
    assert await search.search("sqlite", 0) == []


async def test_search_builds_the_index_when_not_opened(docs: Path, tmp_path: Path) -> None:
    provider = LocalCorpusSearch(docs, tmp_path / "lazy.sqlite3")

    hits = await provider.search("json dumps", 2)
    await provider.aclose()

    assert hits[0].url.endswith("json.txt")
    with pytest.raises(RuntimeError, match="closed"):
        await provider.search("json", 2)


async def test_corpus_gone_at_search_time_is_a_retryable_provider_error(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "unmounted-volume"
    provider = LocalCorpusSearch(missing, tmp_path / "c.sqlite3")

    with pytest.raises(ApplicationError) as raised:
        await provider.search("anything at all", 3)
    await provider.aclose()

    assert raised.value.type == errors.PROVIDER_UNAVAILABLE
    assert not raised.value.non_retryable
    assert str(missing) in str(raised.value)


async def test_content_and_snippet_respect_the_caps(tmp_path: Path) -> None:
    folder = tmp_path / "caps"
    # One paragraph with no line breaks, far longer than a passage or a hit.
    wall = " ".join(f"ocelot{i} ocelot <b>markup</b>" for i in range(3000))
    write(folder, "wall.txt", wall)
    write(folder, "page.html", "<title>Cats</title><p>" + ("ocelot &amp; margay " * 2000) + "</p>")
    provider = await LocalCorpusSearch.open(folder, tmp_path / "caps.sqlite3")

    hits = await provider.search("ocelot margay", 10)
    await provider.aclose()

    assert len(hits) == 2
    for hit in hits:
        assert 0 < len(hit.content) <= MAX_HIT_CONTENT_CHARS
        assert 0 < len(hit.snippet) <= MAX_SNIPPET_CHARS
        assert "ocelot" in hit.snippet
        assert "&amp;" not in hit.content


async def test_concurrent_searches_share_the_pool(search: LocalCorpusSearch) -> None:
    queries = ["sqlite commit", "json dumps", "http request", "sourdough"] * 5
    results = await asyncio.gather(*(search.search(q, 2) for q in queries))

    assert all(results)
    assert [r[0].title for r in results[:4]] == [
        "SQLite transactions in Python",
        "json.txt",
        "Making HTTP requests",
        "Bread baking",
    ]


async def test_default_corpus_ranks_sqlite3_first(default_corpus: Path) -> None:
    data_dir = default_corpus.parent.parent
    provider = await LocalCorpusSearch.open(
        default_corpus, default_index_path(data_dir, default_corpus)
    )

    sqlite_hits = await provider.search("sqlite3 connection cursor execute", 5)
    gzip_hits = await provider.search("compress a file with gzip", 5)
    concurrency_hits = await provider.search("asyncio tasks threads", 5)
    await provider.aclose()

    assert Path(sqlite_hits[0].url).name == "sqlite3.md"
    assert sqlite_hits[0].title.startswith("sqlite3 — ")
    assert "execute" in sqlite_hits[0].content
    assert Path(gzip_hits[0].url).name == "gzip.md"
    # threading names threads in its title; that outranks queue and socketserver, whose
    # passages merely mention both tasks and threads.
    top = [Path(hit.url).stem for hit in concurrency_hits[:3]]
    assert sorted(top) == ["asyncio", "concurrent.futures", "threading"]
