"""Files for the local corpus tests: sample documents, filler text, the built-in corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from research_search.corpus import ensure_default_corpus

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
    """Write `text` to `folder/name`, making the folders on the way."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def filler(index: int) -> str:
    """A paragraph of about 300 characters, different for every index."""
    words = " ".join(f"para{index}word{n}" for n in range(30))
    return f"Paragraph {index} talks about nothing in particular: {words}."


def write_sample_docs(folder: Path) -> Path:
    """Four small documents, one per readable format, and a file the index does not read."""
    write(folder, "sqlite.md", SQLITE_DOC)
    write(folder, "guides/http.markdown", HTTP_DOC)
    write(folder, "json.txt", JSON_DOC)
    write(folder, "kitchen/bread.html", COOKING_HTML)
    write(folder, "notes.pdf", "not a format the index reads: transaction transaction")
    return folder


def shared_default_corpus(factory: pytest.TempPathFactory) -> Path:
    """The real built-in corpus, built once per test session (a few seconds).

    It lives in the session's base temporary folder, so a second module asking for it finds
    it complete and gets it at once.
    """
    return ensure_default_corpus(factory.getbasetemp() / "default-corpus-data")
