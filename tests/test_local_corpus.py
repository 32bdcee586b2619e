"""The offline search provider: a real SQLite FTS5 index over files written to a temp folder."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from research_search import corpus
from research_search.corpus import (
    PASSAGE_MAX_CHARS,
    CorpusUnavailableError,
    IndexStats,
    _stdlib,
    default_index_path,
    ensure_default_corpus,
    extract_document,
    match_expression,
    split_passages,
)
from research_search.providers import SearchProvider
from research_search.providers.local_corpus import LocalCorpusSearch
from research_shared import errors
from research_shared.models import MAX_HIT_CONTENT_CHARS, MAX_SNIPPET_CHARS

SQLITE_DOC = """# SQLite transactions in Python

The sqlite3 module opens a transaction implicitly before a data modification statement.
Call commit() on the connection to make the transaction durable, or rollback() to undo it.

With isolation_level=None the module leaves transaction control to you: issue BEGIN,
COMMIT and ROLLBACK yourself. A connection used as a context manager commits on success.
"""

HTTP_DOC = """# Making HTTP requests

http.client speaks HTTP/1.1 to a server. Build an HTTPSConnection, send a request with
request(), and read the response with getresponse(). Keep-alive reuses the socket.
"""

JSON_DOC = """Reading and writing JSON

json.loads parses a string into Python objects and json.dumps turns them back into text.
Custom encoders handle types such as datetime or Decimal.
"""

COOKING_HTML = """<!doctype html>
<html><head><title>Bread baking</title></head>
<body><h1>Sourdough</h1><p>Flour, water, salt and a lot of patience make the loaf.</p></body>
</html>
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def filler(index: int) -> str:
    """A paragraph of about 300 characters, different for every index."""
    words = " ".join(f"para{index}word{n}" for n in range(30))
    return f"Paragraph {index} talks about nothing in particular: {words}."


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    write(folder, "sqlite.md", SQLITE_DOC)
    write(folder, "guides/http.markdown", HTTP_DOC)
    write(folder, "json.txt", JSON_DOC)
    write(folder, "kitchen/bread.html", COOKING_HTML)
    write(folder, "notes.pdf", "not a format the index reads: transaction transaction")
    return folder


@pytest.fixture
async def search(docs: Path, tmp_path: Path) -> AsyncIterator[LocalCorpusSearch]:
    provider = await LocalCorpusSearch.open(docs, tmp_path / "index" / "docs.sqlite3")
    yield provider
    await provider.aclose()


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


def test_html_is_reduced_to_text() -> None:
    page = b"""<html><head><title>Caf&eacute; &amp; Bar</title>
    <style>.menu { color: red }</style><script>var trackingPixel = 1;</script></head>
    <body><nav><a href="/">Home</a> <a href="/about">NavigationOnlyLink</a></nav>
    <h1>Opening   hours</h1>
    <p>We open at 8&nbsp;am &lt;every&gt; day.</p><p>Espresso costs &euro;2.</p>
    </body></html>"""

    doc = extract_document(Path("cafe.html"), page)

    assert doc.title == "Café & Bar"
    assert "trackingPixel" not in doc.text
    assert "color" not in doc.text
    assert "NavigationOnlyLink" not in doc.text
    assert doc.text.split("\n\n") == [
        "Opening hours",
        "We open at 8 am <every> day.",
        "Espresso costs €2.",
    ]


def test_html_title_falls_back_to_h1_then_file_name() -> None:
    with_h1 = extract_document(Path("a.htm"), b"<body><h1>The <em>real</em>ly good title</h1>")
    bare = extract_document(Path("b.html"), b"<p>just text</p>")

    assert with_h1.title == "The really good title"
    assert bare.title == "b.html"


def test_markdown_comments_are_not_searchable_text() -> None:
    markdown = (
        "# Notes\n\n<!-- generated from the docstrings of Python 3.11.7 -->\n\n"
        "Visible <!-- inline note --> text.\n\n<!-- a note\nover two lines -->\n\n"
        "```html\n<!-- a comment in code stays -->\n```\n"
    )

    document = extract_document(Path("notes.md"), markdown.encode())

    assert document.title == "Notes"
    assert "generated" not in document.text
    assert "inline note" not in document.text and "over two lines" not in document.text
    assert "Visible  text." in document.text
    assert "<!-- a comment in code stays -->" in document.text


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


def test_markdown_and_text_titles() -> None:
    atx = extract_document(Path("a.md"), b"Intro line\n\n## Not this\n\n# The Title #\n\nBody")
    setext = extract_document(Path("b.md"), b"Setext Title\n============\n\nBody")
    fenced = extract_document(Path("c.md"), b"```\n# a comment in code\n```\n\ntext")
    plain = extract_document(Path("notes.txt"), b"# looks like a heading\n")

    assert atx.title == "The Title"
    assert setext.title == "Setext Title"
    assert fenced.title == "c.md"
    assert "```" not in fenced.text
    assert plain.title == "notes.txt"


def test_passages_follow_paragraphs_and_stay_bounded() -> None:
    text = "\n\n".join(filler(i) for i in range(40))
    one_line = "word " * 2000

    passages = split_passages(text)
    long_pieces = split_passages(one_line)

    assert len(passages) > 5
    assert all(len(p) <= PASSAGE_MAX_CHARS for p in passages + long_pieces)
    # Cut on paragraph boundaries: every paragraph lands whole in one passage.
    for i in range(40):
        assert sum(filler(i) in p for p in passages) == 1
    assert "".join(long_pieces).replace(" ", "") == one_line.replace(" ", "")


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


async def test_reindex_picks_up_changes_and_deletions(tmp_path: Path) -> None:
    folder = tmp_path / "live"
    changing = write(folder, "changing.md", "# Changing\n\nThe first version mentions aardvarks.")
    doomed = write(folder, "doomed.txt", "This file mentions pangolins and will be deleted.")
    write(folder, "steady.md", "# Steady\n\nNothing changes here.")
    provider = LocalCorpusSearch(folder, tmp_path / "live.sqlite3")

    first = provider.build_index()
    again = provider.build_index()
    changing.write_text("# Changing\n\nThe second version mentions capybaras instead.")
    stat = changing.stat()
    # A new mtime even on file systems with coarse timestamps.
    os.utime(changing, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    doomed.unlink()
    third = provider.build_index()

    assert (first.added, first.files) == (3, 3)
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 3)
    assert (third.updated, third.removed, third.unchanged, third.files) == (1, 1, 1, 2)
    assert [hit.title for hit in await provider.search("capybaras", 5)] == ["Changing"]
    assert await provider.search("aardvarks", 5) == []
    assert await provider.search("pangolins", 5) == []
    await provider.aclose()
    # The full-text index still agrees with its content table after the deletes.
    with closing(sqlite3.connect(tmp_path / "live.sqlite3")) as conn:
        conn.execute("INSERT INTO passages_fts (passages_fts) VALUES ('integrity-check')")
        assert conn.execute("SELECT count(*) FROM passages_fts").fetchone() == (2,)


async def test_search_builds_the_index_when_not_opened(docs: Path, tmp_path: Path) -> None:
    provider = LocalCorpusSearch(docs, tmp_path / "lazy.sqlite3")

    hits = await provider.search("json dumps", 2)
    await provider.aclose()

    assert hits[0].url.endswith("json.txt")
    with pytest.raises(RuntimeError, match="closed"):
        await provider.search("json", 2)


def test_two_builders_share_one_index(docs: Path, tmp_path: Path) -> None:
    index = tmp_path / "shared.sqlite3"
    providers = [LocalCorpusSearch(docs, index) for _ in range(2)]
    results: list[IndexStats | Exception] = []

    def build(provider: LocalCorpusSearch) -> None:
        try:
            results.append(provider.build_index())
        except Exception as err:
            results.append(err)

    threads = [threading.Thread(target=build, args=(p,)) for p in providers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stats = [r for r in results if isinstance(r, IndexStats)]
    assert len(stats) == 2, results
    assert sorted(s.added for s in stats) == [0, 4]
    assert {s.files for s in stats} == {4}


async def test_missing_or_empty_corpus_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    empty = tmp_path / "empty"
    empty.mkdir()
    write(empty, "image.png", "binary")

    with pytest.raises(CorpusUnavailableError, match="does not exist") as not_there:
        await LocalCorpusSearch.open(missing, tmp_path / "a.sqlite3")
    with pytest.raises(ValueError, match="no document") as nothing:
        await LocalCorpusSearch.open(empty, tmp_path / "b.sqlite3")

    assert str(missing) in str(not_there.value)
    assert str(empty) in str(nothing.value)


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


def test_index_paths_differ_per_corpus(tmp_path: Path) -> None:
    one = default_index_path(tmp_path, tmp_path / "corpus-a")
    two = default_index_path(tmp_path, tmp_path / "corpus-b")
    same = default_index_path(tmp_path, tmp_path / "x" / ".." / "corpus-a")

    assert one != two
    assert one == same
    assert one.parent == tmp_path / "index"
    assert one.name.startswith("corpus-a-")


@pytest.fixture(scope="module")
def default_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real built-in corpus, built once for this module (a few seconds)."""
    return ensure_default_corpus(tmp_path_factory.mktemp("data"))


def test_default_corpus_has_module_documents(default_corpus: Path) -> None:
    marker = json.loads((default_corpus / ".complete.json").read_text(encoding="utf-8"))
    sqlite_doc = (default_corpus / "sqlite3.md").read_text(encoding="utf-8")

    assert default_corpus.name.startswith("python-3.")
    for name in ("sqlite3", "json", "asyncio", "pathlib", "concurrent.futures", "re"):
        assert (default_corpus / f"{name}.md").is_file(), name
    assert len(marker["modules"]) >= 100
    assert sqlite_doc.startswith("# sqlite3 — ")
    # Provenance is an HTML comment: visible in the file, never indexed or quoted.
    assert "<!-- generated from the docstrings of Python 3." in sqlite_doc
    assert "Reference: <https://docs.python.org/3." in sqlite_doc
    assert "## class `Connection" in sqlite_doc
    assert "### `Connection.commit()`\n\nCommit any pending transaction to the database." in (
        sqlite_doc
    )
    # Members are the class's own: nothing inherited, no private or dunder noise.
    assert "inherited from" not in sqlite_doc
    assert "__repr__" not in sqlite_doc and "`_" not in sqlite_doc
    assert marker["format"] == corpus.CORPUS_FORMAT


def test_default_corpus_is_built_once(default_corpus: Path) -> None:
    marker = default_corpus / ".complete.json"
    before = marker.stat().st_mtime_ns

    again = ensure_default_corpus(default_corpus.parent.parent)

    assert again == default_corpus
    assert marker.stat().st_mtime_ns == before


def test_interrupted_default_build_is_redone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short module list keeps this test fast; the full list is covered above.
    monkeypatch.setattr(_stdlib, "CORPUS_MODULES", ("json", "no_such_module_xyz"))
    half_built = corpus.default_corpus_dir(tmp_path)
    write(half_built, "leftover.md", "# from a build that died before its marker")

    built = ensure_default_corpus(tmp_path)
    marker = json.loads((built / ".complete.json").read_text(encoding="utf-8"))

    assert built == half_built
    assert not (built / "leftover.md").exists()
    assert (built / "json.md").is_file()
    assert marker["skipped"] == ["no_such_module_xyz"]
    assert [p.name for p in built.parent.iterdir()] == [built.name]


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


def test_default_corpus_is_markdown_with_quotable_prose(default_corpus: Path) -> None:
    json_doc = (default_corpus / "json.md").read_text(encoding="utf-8")
    outside_code = re.sub(r"```.*?```", "", json_doc, flags=re.DOTALL)

    assert "\n## `dumps(obj, *, skipkeys=False" in json_doc
    # The docstring is prose, one paragraph per line, out of any code block.
    assert "\nSerialize ``obj`` to a JSON formatted ``str``.\n" in outside_code
    # Its doctest examples are code, fenced.
    assert "```pycon\n>>> import json\n>>> json.dumps(" in json_doc
    for path in default_corpus.glob("*.md"):
        # pydoc's class-body gutter and section titles are gone; code blocks (such as the
        # state diagram of http.client) keep their own layout.
        prose = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
        assert "|  " not in prose, path.name
        assert "\nNAME\n" not in prose and "\nFUNCTIONS\n" not in prose, path.name
        assert "Generated by pydoc" not in prose, path.name


def test_docstring_markdown_structures_prose_lists_and_code() -> None:
    doc = """Summary line of the function.

    A paragraph that wraps
    over two lines - with a dash inside.

    Keyword Arguments:
        - prog -- The name of the program (default:
            ``sys.argv[0]``)
        - usage -- A usage message

    Args:
        max_workers: The maximum number of threads
            that can be used.
        thread_name_prefix: An optional name prefix.

    Main API
    ========
    run(...): Runs a command, waits for it to complete, then returns a
              CompletedProcess instance.
    Popen(...): A class for flexibly executing a command

    For example::

        configure(level=3)
        start()

    >>> add(1, 2)
    3
    """
    markdown = corpus.docstring_markdown(doc)

    assert markdown.split("\n\n") == [
        "Summary line of the function.",
        "A paragraph that wraps over two lines - with a dash inside.",
        "Keyword Arguments:",
        "- prog -- The name of the program (default: ``sys.argv[0]``)\n- usage -- A usage message",
        "Args:",
        "- max_workers: The maximum number of threads that can be used.\n"
        "- thread_name_prefix: An optional name prefix.",
        "**Main API**",
        "- run(...): Runs a command, waits for it to complete, then returns a "
        "CompletedProcess instance.\n"
        "- Popen(...): A class for flexibly executing a command",
        "For example:",
        "```python\nconfigure(level=3)\nstart()\n```",
        "```pycon\n>>> add(1, 2)\n3\n```",
    ]


def test_module_rendering_keeps_public_documented_members_only() -> None:
    markdown = corpus.render_module("json")

    headings = [line for line in markdown.splitlines() if line.startswith("#")]
    assert headings[0].startswith("# json — JSON (JavaScript Object Notation)")
    assert "## `dumps(obj, *, skipkeys=False" in "\n".join(headings)
    assert "## class `JSONDecoder(" in "\n".join(headings)
    assert "### `JSONDecoder.decode(s" in "\n".join(headings)
    # The constructor is documented; private names and other dunder methods are not.
    assert "### `JSONDecoder.__init__(*, object_hook=None" in "\n".join(headings)
    assert not [h for h in headings if "`_" in h or ("._" in h and "__init__" not in h)]
    # Defaults show names, never memory addresses that change from one build to the next.
    assert " at 0x" not in markdown


def test_outdated_corpus_format_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_stdlib, "CORPUS_MODULES", ("json",))
    old = corpus.default_corpus_dir(tmp_path)
    write(old, "json.md", "# json\n\n```text\nNAME\n    json\n```\n")
    write(old, ".complete.json", json.dumps({"format": corpus.CORPUS_FORMAT - 1}))

    built = ensure_default_corpus(tmp_path)

    assert "```text\nNAME" not in (built / "json.md").read_text(encoding="utf-8")


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
