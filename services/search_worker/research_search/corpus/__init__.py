"""The local corpus: documents on disk, their full-text index, and the built-in corpus.

Private modules by concern: `_stdlib` builds the built-in corpus (the installed Python's
standard library documentation), `_render` and `_docstrings` write its markdown, and
`_index` keeps the SQLite FTS5 index. The `local` search provider
(`research_search.providers.local_corpus`) is a thin adapter over this package.
"""

from research_search.corpus._docstrings import docstring_markdown
from research_search.corpus._index import default_index_path
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
    "DefaultCorpusError",
    "default_corpus_dir",
    "default_index_path",
    "docstring_markdown",
    "ensure_default_corpus",
    "render_module",
]
