"""Offline search: BM25 over a folder of markdown, text and HTML files, in SQLite FTS5.

Documents are indexed as passages of roughly a thousand characters cut on paragraph
boundaries, so a hit carries the part of a file that matched, not its first page. The index
is a single SQLite file kept next to the corpus's other data; building it again only reads
the files whose modification time or size changed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from research_search.providers import ProgressCallback, SearchProgress
from research_shared import provider_errors
from research_shared.models import MAX_HIT_CONTENT_CHARS, MAX_SNIPPET_CHARS, SearchHit

__all__ = [
    "INDEXED_SUFFIXES",
    "CorpusUnavailableError",
    "Document",
    "IndexStats",
    "LocalCorpusSearch",
    "extract_document",
    "match_expression",
    "split_passages",
]

_log = logging.getLogger(__name__)

INDEXED_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".html", ".htm"})
"""File name endings (case-insensitive) that the index reads."""

_HTML_SUFFIXES = frozenset({".html", ".htm"})
_MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})

# Bumped whenever the schema, the tokenizer or the passage cutting changes: an index of an
# older version is dropped and rebuilt rather than mixed with new rows.
_SCHEMA_VERSION = 2
PASSAGE_MIN_CHARS = 1000
PASSAGE_MAX_CHARS = 1500
# A log file of hundreds of megabytes is not a document; it would only slow every build.
_MAX_FILE_BYTES = 16 * 1024 * 1024
# Long enough for a first build of a large corpus by another process to finish.
_BUSY_TIMEOUT_SECONDS = 120.0
_MAX_QUERY_TERMS = 32
# A match in the title says more about the whole file than one in a passage's body.
_TITLE_WEIGHT = 4.0
_BODY_WEIGHT = 1.0
# FTS5's bm25 adds the weighted columns up before it saturates, so a passage's title weight
# cannot lift a file past a passage that matches one more query term: "threads" in
# threading's title lost to any passage mentioning both "tasks" and "threads". The title is
# therefore also ranked on its own, per file, and that score is added with this weight.
_FILE_TITLE_WEIGHT = 1.0
_SNIPPET_TOKENS = 40
# How far from the matched passage the hit's content may reach, in passages on each side.
_MAX_NEIGHBOURS = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    title TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_by_file ON passages (file_id, seq);
CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts USING fts5 (
    title, body, content='passages', content_rowid='id', tokenize='porter unicode61'
);
CREATE VIRTUAL TABLE IF NOT EXISTS titles_fts USING fts5 (
    title, content='files', content_rowid='id', tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS files_ai AFTER INSERT ON files BEGIN
    INSERT INTO titles_fts (rowid, title) VALUES (new.id, new.title);
END;
CREATE TRIGGER IF NOT EXISTS files_ad AFTER DELETE ON files BEGIN
    INSERT INTO titles_fts (titles_fts, rowid, title) VALUES ('delete', old.id, old.title);
END;
CREATE TRIGGER IF NOT EXISTS passages_ai AFTER INSERT ON passages BEGIN
    INSERT INTO passages_fts (rowid, title, body) VALUES (new.id, new.title, new.body);
END;
CREATE TRIGGER IF NOT EXISTS passages_ad AFTER DELETE ON passages BEGIN
    INSERT INTO passages_fts (passages_fts, rowid, title, body)
    VALUES ('delete', old.id, old.title, old.body);
END;
"""

_DROP_SCHEMA = """
DROP TRIGGER IF EXISTS passages_ai;
DROP TRIGGER IF EXISTS passages_ad;
DROP TRIGGER IF EXISTS files_ai;
DROP TRIGGER IF EXISTS files_ad;
DROP TABLE IF EXISTS titles_fts;
DROP TABLE IF EXISTS passages_fts;
DROP TABLE IF EXISTS passages;
DROP TABLE IF EXISTS files;
"""

# bm25() may only be called in a query directly on the FTS table, so the ranking is
# materialized first and the best passage of each file picked from it afterwards.
_BEST_PASSAGE_PER_FILE = f"""
WITH hits AS MATERIALIZED (
    SELECT rowid AS id, bm25(passages_fts, {_TITLE_WEIGHT}, {_BODY_WEIGHT}) AS rank
    FROM passages_fts WHERE passages_fts MATCH :expression
),
titled AS MATERIALIZED (
    SELECT rowid AS file_id, bm25(titles_fts) AS rank
    FROM titles_fts WHERE titles_fts MATCH :expression
),
ranked AS (
    SELECT p.id, p.file_id, p.seq, p.title, p.body,
           h.rank + {_FILE_TITLE_WEIGHT} * coalesce(t.rank, 0.0) AS rank,
           row_number() OVER (PARTITION BY p.file_id ORDER BY h.rank, p.seq) AS nth
    FROM hits AS h JOIN passages AS p ON p.id = h.id
    LEFT JOIN titled AS t ON t.file_id = p.file_id
)
SELECT r.id, r.file_id, r.seq, r.title, r.body, r.rank, f.path
FROM ranked AS r JOIN files AS f ON f.id = r.file_id
WHERE r.nth = 1
ORDER BY r.rank, f.path
LIMIT :limit
"""

_STOP_WORD_TEXT = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing done down during each
    either etc even ever every few for from further get gets getting give given go had has
    have having he her here hers herself him himself his how however i if in into is it its
    itself just let like made make many may me might more most much must my myself need no
    nor not now of off often on once one only or other ought our ours ourselves out over own
    per please rather really same say says shall she should show since so some such tell than
    that the their theirs them themselves then there these they this those though through to
    too under until up upon us use used using very via want was way we were what whatever
    when where whether which while who whom whose why will with within without would yet you
    your yours yourself yourselves vs versus
"""
_STOP_WORDS = frozenset(_STOP_WORD_TEXT.split())
_FTS_OPERATORS = frozenset({"AND", "OR", "NOT", "NEAR"})
# Words joined by dots or hyphens stay one phrase ("http.client", "thread-safe"): FTS5 splits
# the quoted phrase into the same tokens as the index, and requires them to be adjacent.
_QUERY_TOKEN = re.compile(r"\w+(?:[.\-]\w+)*")
_HAS_WORD_CHAR = re.compile(r"[^\W_]")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WHITESPACE = re.compile(r"\s+")
# Stand-alone layout marks (the "|" gutter of plain-text docs, table bars, heading hashes)
# mean nothing once a snippet is folded onto one line.
_LAYOUT_MARKS = re.compile(r"(?<!\S)(?:\|+|#{1,6})(?!\S)")
_CODE_FENCE = re.compile(r"^\s*(```|~~~)")
# A markdown file's HTML comments are invisible to its readers (notes, provenance, editor
# markers), so they are not searchable text either.
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_ATX_H1 = re.compile(r"^#[ \t]+(.+?)[ \t]*#*[ \t]*$")
_SETEXT_H1 = re.compile(r"^=+[ \t]*$")


class CorpusUnavailableError(ValueError):
    """The corpus folder is missing, is not a folder, or holds no file the index can read."""


@dataclass(frozen=True)
class IndexStats:
    """What one `build_index` call did, and the size of the index afterwards."""

    files: int
    passages: int
    added: int
    updated: int
    removed: int
    unchanged: int
    skipped: int
    seconds: float


@dataclass(frozen=True)
class Document:
    """The searchable text of one file: a title and its body as plain text."""

    title: str
    text: str


def match_expression(query: str) -> str | None:
    """Turn free text into an FTS5 MATCH expression that cannot be a syntax error.

    Every term is quoted, so quotes, parentheses, `*`, `-`, `:` and the operators in the
    text are never read as FTS5 syntax; stop words are dropped and the rest are ORed, so a
    passage with only some of the terms still ranks (BM25 puts those with more first).
    Returns None when nothing searchable is left.
    """
    terms: list[str] = []
    seen: set[str] = set()
    for match in _QUERY_TOKEN.finditer(query):
        raw = match.group(0)
        term = raw.lower()
        if raw in _FTS_OPERATORS or term in _STOP_WORDS or term in seen:
            continue
        if len(term) < 2 or not _HAS_WORD_CHAR.search(term):
            continue
        seen.add(term)
        terms.append('"' + term.replace('"', '""') + '"')
        if len(terms) == _MAX_QUERY_TERMS:
            break
    return " OR ".join(terms) if terms else None


class _HtmlText(HTMLParser):
    """Collects the readable text of an HTML page as paragraphs, plus its title and first h1."""

    _SKIPPED = frozenset({"script", "style", "nav", "noscript", "template", "svg"})
    _BLOCKS = frozenset(
        {
            "address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl",
            "dt", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
            "header", "hr", "li", "main", "ol", "p", "pre", "section", "summary", "table",
            "td", "th", "tr", "ul",
        }
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self.title = ""
        self.first_h1 = ""
        self._current: list[str] = []
        self._skip_depth = 0
        self._in_title = False
        self._title_parts: list[str] = []
        self._h1_depth = 0
        self._h1_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIPPED:
            self._skip_depth += 1
        elif tag == "title":
            self._in_title = True
        elif tag in self._BLOCKS:
            self._flush()
            if tag == "h1":
                self._h1_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIPPED:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag == "title":
            self._in_title = False
            if not self.title:
                self.title = _collapse("".join(self._title_parts))
        elif tag in self._BLOCKS:
            self._flush()
            if tag == "h1" and self._h1_depth:
                self._h1_depth -= 1
                if not self.first_h1:
                    self.first_h1 = _collapse("".join(self._h1_parts))

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._in_title:
            self._title_parts.append(data)
            return
        if self._h1_depth and not self.first_h1:
            self._h1_parts.append(data)
        self._current.append(data)

    def close(self) -> None:
        super().close()
        self._flush()
        if self._in_title and not self.title:
            self.title = _collapse("".join(self._title_parts))

    def _flush(self) -> None:
        text = _collapse("".join(self._current))
        self._current.clear()
        if text:
            self.paragraphs.append(text)


def _collapse(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _snippet_text(text: str) -> str:
    return _collapse(_LAYOUT_MARKS.sub(" ", text))


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def extract_document(path: Path, data: bytes) -> Document:
    """The title and plain text of a file, by its kind (HTML, markdown or plain text)."""
    text = _decode(data).replace("\r\n", "\n").replace("\r", "\n")
    suffix = path.suffix.lower()
    if suffix in _HTML_SUFFIXES:
        parser = _HtmlText()
        parser.feed(text)
        parser.close()
        title = parser.title or parser.first_h1 or path.name
        return Document(title=title, text="\n\n".join(parser.paragraphs))
    if suffix in _MARKDOWN_SUFFIXES:
        return Document(title=_markdown_title(text) or path.name, text=_markdown_text(text))
    return Document(title=path.name, text=text)


def _markdown_title(text: str) -> str:
    in_fence = False
    previous = ""
    for line in text.split("\n"):
        if _CODE_FENCE.match(line):
            in_fence = not in_fence
            previous = ""
            continue
        if in_fence:
            continue
        heading = _ATX_H1.match(line)
        if heading:
            return heading.group(1).strip()
        if previous.strip() and _SETEXT_H1.match(line):
            return previous.strip()
        previous = line
    return ""


def _markdown_text(text: str) -> str:
    """The text of a markdown file without fence markers, and without HTML comments outside
    code blocks; the code inside the fences stays searchable."""
    kept: list[str] = []
    prose: list[str] = []
    in_fence = False

    def flush_prose() -> None:
        if prose:
            kept.append(_HTML_COMMENT.sub("", "\n".join(prose)))
            prose.clear()

    for line in text.split("\n"):
        if _CODE_FENCE.match(line):
            if not in_fence:
                flush_prose()
            in_fence = not in_fence
            continue
        (kept if in_fence else prose).append(line)
    flush_prose()
    return "\n".join(kept)


def split_passages(
    text: str, min_chars: int = PASSAGE_MIN_CHARS, max_chars: int = PASSAGE_MAX_CHARS
) -> list[str]:
    """Cut text into passages of about `min_chars` to `max_chars`, on paragraph boundaries.

    A paragraph longer than `max_chars` is cut on line, then sentence, then word boundaries.
    """
    pieces: list[str] = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        paragraph = "\n".join(line.rstrip() for line in paragraph.split("\n")).strip("\n")
        if paragraph.strip():
            pieces.extend(_split_long(paragraph, max_chars))

    passages: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 2 + len(piece) > max_chars:
            passages.append(current)
            current = ""
        current = f"{current}\n\n{piece}" if current else piece
        if len(current) >= min_chars:
            passages.append(current)
            current = ""
    if current:
        passages.append(current)
    return passages


def _split_long(paragraph: str, max_chars: int) -> list[str]:
    if len(paragraph) <= max_chars:
        return [paragraph]
    for separator, splitter in (
        ("\n", re.compile(r"\n")),
        (" ", _SENTENCE_END),
        (" ", _WHITESPACE),
    ):
        parts = [part for part in splitter.split(paragraph) if part.strip()]
        if len(parts) > 1:
            return _pack(parts, separator, max_chars)
    return [paragraph[i : i + max_chars] for i in range(0, len(paragraph), max_chars)]


def _pack(parts: list[str], separator: str, max_chars: int) -> list[str]:
    """Join consecutive parts up to `max_chars`; a part still too long is cut further."""
    out: list[str] = []
    current = ""
    for part in parts:
        if len(part) > max_chars:
            if current:
                out.append(current)
                current = ""
            out.extend(_split_long(part, max_chars))
            continue
        if current and len(current) + len(separator) + len(part) > max_chars:
            out.append(current)
            current = ""
        current = f"{current}{separator}{part}" if current else part
    if current:
        out.append(current)
    return out


def _truncate(text: str, limit: int) -> str:
    """Cut at a word boundary with an ellipsis, so the result is at most `limit` characters."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _scan(corpus_dir: Path) -> dict[str, tuple[int, int]]:
    """Path -> (mtime_ns, size) of every indexable file under the corpus, hidden ones aside."""
    found: dict[str, tuple[int, int]] = {}
    for root, dirs, files in os.walk(corpus_dir):
        # Hidden folders hold tool state (.git, build markers), not documents.
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith(".") or Path(name).suffix.lower() not in INDEXED_SUFFIXES:
                continue
            path = os.path.join(root, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue
            found[path] = (stat.st_mtime_ns, stat.st_size)
    return found


class LocalCorpusSearch:
    """A `SearchProvider` over a local folder of documents, ranked by BM25.

    Build it with `await LocalCorpusSearch.open(corpus_dir, index_path)`, which creates or
    refreshes the index off the event loop. Several processes may open the same index: it
    runs in WAL mode, so searches never wait for a build, and builds wait for each other.
    """

    name: str = "local"

    def __init__(self, corpus_dir: Path, index_path: Path) -> None:
        self.corpus_dir = Path(corpus_dir).expanduser().resolve()
        self.index_path = Path(index_path).expanduser().resolve()
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._built = False
        self._closed = False
        self._build_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"LocalCorpusSearch(corpus_dir={str(self.corpus_dir)!r})"

    @classmethod
    async def open(cls, corpus_dir: Path, index_path: Path) -> LocalCorpusSearch:
        """Create the provider and build or refresh its index in a worker thread.

        Raises `CorpusUnavailableError` when the corpus folder is missing or empty.
        """
        provider = cls(corpus_dir, index_path)
        await asyncio.to_thread(provider.build_index)
        return provider

    def build_index(self) -> IndexStats:
        """Bring the index in line with the corpus folder; blocking, so call it in a thread.

        Only files whose modification time or size changed are read again; files that are
        gone are forgotten. Safe to run from several processes at once.
        """
        started = time.monotonic()
        corpus = self.corpus_dir
        if not corpus.is_dir():
            what = "is not a folder" if corpus.exists() else "does not exist"
            raise CorpusUnavailableError(f"the corpus folder {corpus} {what}")
        found = _scan(corpus)
        if not found:
            suffixes = ", ".join(sorted(INDEXED_SUFFIXES))
            raise CorpusUnavailableError(
                f"the corpus folder {corpus} holds no document to index ({suffixes})"
            )

        self.index_path.parent.mkdir(parents=True, exist_ok=True)
        added = updated = removed = unchanged = skipped = 0
        with closing(self._connect()) as conn:
            # IMMEDIATE takes the write lock up front, so a second builder waits here (busy
            # timeout) and then finds nothing left to do, instead of failing half-way.
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._ensure_schema(conn)
                known = {
                    path: (file_id, mtime_ns, size)
                    for file_id, path, mtime_ns, size in conn.execute(
                        "SELECT id, path, mtime_ns, size FROM files"
                    )
                }
                for path in known.keys() - found.keys():
                    self._forget(conn, known[path][0])
                    removed += 1
                for path in sorted(found):
                    previous = known.get(path)
                    if previous is not None and previous[1:] == found[path]:
                        unchanged += 1
                        continue
                    if previous is not None:
                        self._forget(conn, previous[0])
                    if self._index_file(conn, path, *found[path]):
                        if previous is None:
                            added += 1
                        else:
                            updated += 1
                    else:
                        skipped += 1
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            files, passages = conn.execute(
                "SELECT (SELECT count(*) FROM files), (SELECT count(*) FROM passages)"
            ).fetchone()
        self._built = True
        stats = IndexStats(
            files=files,
            passages=passages,
            added=added,
            updated=updated,
            removed=removed,
            unchanged=unchanged,
            skipped=skipped,
            seconds=round(time.monotonic() - started, 3),
        )
        _log.info(
            "local corpus index of %s is up to date: %d files, %d passages "
            "(%d added, %d updated, %d removed, %d skipped) in %.2f s",
            corpus,
            stats.files,
            stats.passages,
            added,
            updated,
            removed,
            skipped,
            stats.seconds,
        )
        return stats

    async def search(
        self,
        query: str,
        max_results: int,
        progress: SearchProgress | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[SearchHit]:
        """The best passage of each of the `max_results` most relevant files, best first.

        One query of a local index is one step, so there is no progress to report or resume.
        """
        if self._closed:
            raise RuntimeError("LocalCorpusSearch is closed")
        expression = match_expression(query)
        if expression is None or max_results < 1:
            return []
        try:
            if not self._built:
                async with self._build_lock:
                    if not self._built:
                        await asyncio.to_thread(self.build_index)
            return await asyncio.to_thread(self._search, expression, max_results)
        except (sqlite3.Error, CorpusUnavailableError) as err:
            # A locked or unreadable index, or a corpus folder that went away, may well be
            # fixed by the time the activity retries.
            raise provider_errors.unavailable(self.name, err) from err

    async def aclose(self) -> None:
        """Close the pooled database connections; searching afterwards is an error."""
        self._closed = True
        await asyncio.to_thread(self._close_readers)

    def _close_readers(self) -> None:
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                return

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.index_path,
            timeout=_BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            # WAL lets searches read while another process rebuilds; it is stored in the
            # file, so later connections find it already on.
            _set_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        # Connections are pooled rather than per thread: the thread pool that runs
        # asyncio.to_thread is shared, and a pooled connection can be closed by aclose().
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            yield conn
        finally:
            if self._closed:
                conn.close()
            else:
                self._readers.put(conn)

    @staticmethod
    def _ensure_schema(conn: sqlite3.Connection) -> None:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version != _SCHEMA_VERSION:
            _run_script(conn, _DROP_SCHEMA)
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        _run_script(conn, _SCHEMA)

    @staticmethod
    def _forget(conn: sqlite3.Connection, file_id: int) -> None:
        conn.execute("DELETE FROM passages WHERE file_id = ?", (file_id,))
        conn.execute("DELETE FROM files WHERE id = ?", (file_id,))

    @staticmethod
    def _index_file(conn: sqlite3.Connection, path: str, mtime_ns: int, size: int) -> bool:
        """Read and index one file; False when it was skipped (too large or unreadable)."""
        if size > _MAX_FILE_BYTES:
            _log.warning("not indexing %s: %d bytes is over the limit", path, size)
            # Recorded without passages, so it is not read again until it changes.
            conn.execute(
                "INSERT INTO files (path, mtime_ns, size, title) VALUES (?, ?, ?, ?)",
                (path, mtime_ns, size, Path(path).name),
            )
            return False
        try:
            data = Path(path).read_bytes()
        except OSError as err:
            # Not recorded, so the next build tries again.
            _log.warning("not indexing %s: %s", path, err)
            return False
        document = extract_document(Path(path), data)
        cursor = conn.execute(
            "INSERT INTO files (path, mtime_ns, size, title) VALUES (?, ?, ?, ?)",
            (path, mtime_ns, size, document.title),
        )
        conn.executemany(
            "INSERT INTO passages (file_id, seq, title, body) VALUES (?, ?, ?, ?)",
            (
                (cursor.lastrowid, seq, document.title, body)
                for seq, body in enumerate(split_passages(document.text))
            ),
        )
        return True

    def _search(self, expression: str, max_results: int) -> list[SearchHit]:
        with self._reader() as conn:
            # One read transaction, so a rebuild by another process cannot change the index
            # between the ranking and the reading of snippets and neighbours.
            conn.execute("BEGIN")
            try:
                return self._search_in(conn, expression, max_results)
            finally:
                conn.execute("COMMIT")

    @classmethod
    def _search_in(
        cls, conn: sqlite3.Connection, expression: str, max_results: int
    ) -> list[SearchHit]:
        rows = conn.execute(
            _BEST_PASSAGE_PER_FILE, {"expression": expression, "limit": max_results}
        ).fetchall()
        if not rows:
            return []
        ids = [row[0] for row in rows]
        marks = ",".join("?" * len(ids))
        snippets = dict(
            conn.execute(
                "SELECT rowid, snippet(passages_fts, 1, '', '', '…', ?) FROM passages_fts"
                f" WHERE passages_fts MATCH ? AND rowid IN ({marks})",
                (_SNIPPET_TOKENS, expression, *ids),
            ).fetchall()
        )
        hits: list[SearchHit] = []
        for passage_id, file_id, seq, title, body, rank, path in rows:
            snippet = _snippet_text(snippets.get(passage_id) or "") or _snippet_text(body)
            hits.append(
                SearchHit(
                    title=_truncate(title, 300),
                    url=path,
                    snippet=_truncate(snippet, MAX_SNIPPET_CHARS),
                    content=cls._content(conn, file_id, seq, body),
                    score=round(max(-rank, 1e-9), 6),
                )
            )
        return hits

    @staticmethod
    def _content(conn: sqlite3.Connection, file_id: int, seq: int, body: str) -> str:
        """The passage, widened by the passages around it while they fit in the cap.

        Neighbours are taken nearest first, the one after before the one before: the rest
        of a matched section usually follows it. A short passage at the end of a file would
        otherwise leave the synthesizer a few lines where it may have pages.
        """
        if len(body) >= MAX_HIT_CONTENT_CHARS:
            return _truncate(body, MAX_HIT_CONTENT_CHARS)
        neighbours = dict(
            conn.execute(
                "SELECT seq, body FROM passages WHERE file_id = ? AND seq BETWEEN ? AND ?",
                (file_id, seq - _MAX_NEIGHBOURS, seq + _MAX_NEIGHBOURS),
            ).fetchall()
        )
        first = last = seq
        size = len(body)
        for step in range(1, _MAX_NEIGHBOURS + 1):
            for candidate in (seq + step, seq - step):
                text = neighbours.get(candidate)
                # Only a neighbour adjacent to what is taken keeps the text contiguous.
                if text is None or candidate not in (first - 1, last + 1):
                    continue
                if size + 2 + len(text) > MAX_HIT_CONTENT_CHARS:
                    continue
                size += 2 + len(text)
                first, last = min(first, candidate), max(last, candidate)
        return "\n\n".join(neighbours.get(n, body) for n in range(first, last + 1))


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run several statements inside the caller's transaction.

    `executescript` would commit the open transaction first and so release the write lock.
    """
    for statement in _split_statements(script):
        conn.execute(statement)


def _split_statements(script: str) -> Iterator[str]:
    buffer = ""
    for line in script.strip().splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer.strip()
            buffer = ""
    if buffer.strip():
        yield buffer.strip()


def _set_wal(conn: sqlite3.Connection, attempts: int = 50) -> None:
    """Switch to WAL, waiting out a concurrent switch.

    Two connections that open a new database at once can both try to change its journal
    mode; SQLite then answers "database is locked" at once, without calling the busy
    handler, so the wait is done here.
    """
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) and "busy" not in str(err):
                raise
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
