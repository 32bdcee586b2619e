"""The local corpus: documents on disk, their full-text index, and the built-in corpus.

Private modules by concern:

- `_documents`: which files of a folder are documents, their text, and its passages, with
  `_html` and `_markdown` reading those two formats and `_text` the helpers they share;
- `_index`: the SQLite FTS5 index of a folder, kept up to date incrementally, safe to share
  between processes;
- `_ranking`: what a query means and how passages rank;
- `_stdlib`: the built-in corpus (the installed Python's standard library documentation),
  whose markdown `_render` and `_docstrings` write.

The `local` search provider (`research_search.providers.local_corpus`) is a thin adapter
over this package. Nothing here imports the contract package (pydantic, Temporal), so the
processes that render the built-in corpus start fast.
"""

from research_search.corpus._docstrings import docstring_markdown
from research_search.corpus._documents import (
    INDEXED_SUFFIXES,
    PASSAGE_MAX_CHARS,
    PASSAGE_MIN_CHARS,
    Document,
    extract_document,
    split_passages,
)
from research_search.corpus._index import (
    CorpusIndex,
    CorpusUnavailableError,
    IndexStats,
    default_index_path,
)
from research_search.corpus._ranking import CorpusHit, HitLimits, match_expression
from research_search.corpus._render import render_module
from research_search.corpus._stdlib import (
    CORPUS_FORMAT,
    CORPUS_MODULES,
    DefaultCorpusError,
    default_corpus_dir,
    ensure_default_corpus,
)

__all__ = [
    "CORPUS_FORMAT",
    "CORPUS_MODULES",
    "INDEXED_SUFFIXES",
    "PASSAGE_MAX_CHARS",
    "PASSAGE_MIN_CHARS",
    "CorpusHit",
    "CorpusIndex",
    "CorpusUnavailableError",
    "DefaultCorpusError",
    "Document",
    "HitLimits",
    "IndexStats",
    "default_corpus_dir",
    "default_index_path",
    "docstring_markdown",
    "ensure_default_corpus",
    "extract_document",
    "match_expression",
    "render_module",
    "split_passages",
]
