"""The SQLite FTS5 index: incremental rebuilds, builders sharing one file, index paths."""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest

from research_search.corpus import CorpusUnavailableError, IndexStats, default_index_path
from research_search.providers.local_corpus import LocalCorpusSearch
from tests.helpers.corpus import write, write_sample_docs


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    return write_sample_docs(tmp_path / "docs")


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


def test_index_paths_differ_per_corpus(tmp_path: Path) -> None:
    one = default_index_path(tmp_path, tmp_path / "corpus-a")
    two = default_index_path(tmp_path, tmp_path / "corpus-b")
    same = default_index_path(tmp_path, tmp_path / "x" / ".." / "corpus-a")

    assert one != two
    assert one == same
    assert one.parent == tmp_path / "index"
    assert one.name.startswith("corpus-a-")


async def test_index_of_an_older_format_is_rebuilt(docs: Path, tmp_path: Path) -> None:
    index = tmp_path / "old.sqlite3"
    LocalCorpusSearch(docs, index).build_index()
    # What an older release leaves on disk: an older format version, a table it did not
    # have yet, and rows its readers wrote differently.
    with closing(sqlite3.connect(index)) as conn:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        conn.execute(f"PRAGMA user_version = {version - 1}")
        conn.execute("DROP TABLE titles_fts")
        conn.execute("UPDATE files SET title = 'written by an old reader'")
        conn.commit()

    provider = LocalCorpusSearch(docs, index)
    stats = provider.build_index()
    hits = await provider.search("sourdough patience", 3)
    await provider.aclose()

    assert (stats.added, stats.unchanged, stats.files) == (4, 0, 4)
    assert [hit.title for hit in hits] == ["Bread baking"]
    with closing(sqlite3.connect(index)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (version,)
        assert conn.execute(
            "SELECT count(*) FROM files WHERE title LIKE '%old reader%'"
        ).fetchone() == (0,)
