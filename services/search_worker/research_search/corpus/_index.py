"""The SQLite FTS5 index of a corpus folder, kept up to date incrementally.

The index is a single SQLite file kept next to the corpus's other data; building it again
only reads the files whose modification time or size changed. Several processes may share
one index file: it runs in WAL mode, so searches never wait for a build, and builds wait for
each other.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from research_search.corpus._documents import (
    INDEXED_SUFFIXES,
    extract_document,
    find_documents,
    split_passages,
)
from research_search.corpus._ranking import CorpusHit, HitLimits, rank_passages

__all__ = ["CorpusIndex", "CorpusUnavailableError", "IndexStats", "default_index_path"]

_log = logging.getLogger(__name__)

# Bumped whenever the schema, the tokenizer, the passage cutting or the reading of documents
# changes: an index of an older version is dropped and rebuilt rather than mixed with new rows.
# 3: markdown read by a CommonMark parser, HTML by an HTML Standard one.
SCHEMA_VERSION = 3
# A log file of hundreds of megabytes is not a document; it would only slow every build.
_MAX_FILE_BYTES = 16 * 1024 * 1024
# Long enough for a first build of a large corpus by another process to finish.
_BUSY_TIMEOUT_SECONDS = 120.0

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


class CorpusUnavailableError(ValueError):
    """The corpus folder is missing, is not a folder, or holds no file the index can read."""


@dataclass(frozen=True)
class IndexStats:
    """What one `CorpusIndex.build` call did, and the size of the index afterwards."""

    files: int
    passages: int
    added: int
    updated: int
    removed: int
    unchanged: int
    skipped: int
    seconds: float


def default_index_path(data_dir: Path, corpus_dir: Path) -> Path:
    """The index file of `corpus_dir`, under `data_dir/index/`.

    The name carries a digest of the corpus folder's absolute path, so two corpora never
    share (and keep rebuilding) one index.
    """
    resolved = str(Path(corpus_dir).expanduser().resolve())
    digest = hashlib.sha256(resolved.encode("utf-8")).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(resolved).name).strip("-.") or "corpus"
    return data_dir / "index" / f"{slug}-{digest}.sqlite3"


class CorpusIndex:
    """The full-text index of one corpus folder, in one SQLite file.

    Its methods block, so async code calls them in a worker thread. Reading connections are
    pooled rather than kept per thread, so any thread may search.
    """

    def __init__(self, corpus_dir: Path, index_path: Path) -> None:
        self.corpus_dir = Path(corpus_dir).expanduser().resolve()
        self.index_path = Path(index_path).expanduser().resolve()
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._closed = False

    def build(self) -> IndexStats:
        """Bring the index in line with the corpus folder.

        Only files whose modification time or size changed are read again; files that are
        gone are forgotten. Safe to run from several processes at once. Raises
        `CorpusUnavailableError` when the corpus folder is missing or holds no document.
        """
        started = time.monotonic()
        corpus = self.corpus_dir
        if not corpus.is_dir():
            what = "is not a folder" if corpus.exists() else "does not exist"
            raise CorpusUnavailableError(f"the corpus folder {corpus} {what}")
        found = find_documents(corpus)
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
                _ensure_schema(conn)
                known = {
                    path: (file_id, mtime_ns, size)
                    for file_id, path, mtime_ns, size in conn.execute(
                        "SELECT id, path, mtime_ns, size FROM files"
                    )
                }
                for path in known.keys() - found.keys():
                    _forget(conn, known[path][0])
                    removed += 1
                for path in sorted(found):
                    previous = known.get(path)
                    if previous is not None and previous[1:] == found[path]:
                        unchanged += 1
                        continue
                    if previous is not None:
                        _forget(conn, previous[0])
                    if _index_file(conn, path, *found[path]):
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

    def search(self, expression: str, limit: int, limits: HitLimits) -> list[CorpusHit]:
        """The best passage of each of the `limit` most relevant files, best first.

        `expression` comes from `match_expression`; see `rank_passages`.
        """
        if self._closed:
            raise RuntimeError(f"the index {self.index_path} is closed")
        with self._reader() as conn:
            # One read transaction, so a rebuild by another process cannot change the index
            # between the ranking and the reading of snippets and neighbours.
            conn.execute("BEGIN")
            try:
                return rank_passages(conn, expression, limit, limits)
            finally:
                conn.execute("COMMIT")

    def close(self) -> None:
        """Close the pooled connections; a search still running closes its own when done."""
        self._closed = True
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
        # asyncio.to_thread is shared, and a pooled connection can be closed by close().
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


def _ensure_schema(conn: sqlite3.Connection) -> None:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version != SCHEMA_VERSION:
        _run_script(conn, _DROP_SCHEMA)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    _run_script(conn, _SCHEMA)


def _forget(conn: sqlite3.Connection, file_id: int) -> None:
    conn.execute("DELETE FROM passages WHERE file_id = ?", (file_id,))
    conn.execute("DELETE FROM files WHERE id = ?", (file_id,))


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
