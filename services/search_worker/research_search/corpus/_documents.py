"""The documents of a corpus folder: which files they are, their text, and its passages.

Documents are indexed as passages of roughly a thousand characters cut on paragraph
boundaries, so a hit carries the part of a file that matched, not its first page.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from research_search.corpus._html import read_html
from research_search.corpus._markdown import read_markdown
from research_search.corpus._text import decode_text

__all__ = [
    "INDEXED_SUFFIXES",
    "PASSAGE_MAX_CHARS",
    "PASSAGE_MIN_CHARS",
    "Document",
    "extract_document",
    "find_documents",
    "split_passages",
]

INDEXED_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".html", ".htm"})
"""File name endings (case-insensitive) that the index reads."""

_HTML_SUFFIXES = frozenset({".html", ".htm"})
_MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})

PASSAGE_MIN_CHARS = 1000
PASSAGE_MAX_CHARS = 1500
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Document:
    """The searchable text of one file: a title and its body as plain text."""

    title: str
    text: str


def find_documents(corpus_dir: Path) -> dict[str, tuple[int, int]]:
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


def extract_document(path: Path, data: bytes) -> Document:
    """The title and plain text of a file, by its kind (HTML, markdown or plain text)."""
    suffix = path.suffix.lower()
    if suffix in _HTML_SUFFIXES:
        # From the bytes: a page may declare its own encoding.
        page = read_html(data)
        title = page.title or page.first_h1 or path.name
        return Document(title=title, text="\n\n".join(page.paragraphs))
    text = decode_text(data).replace("\r\n", "\n").replace("\r", "\n")
    if suffix in _MARKDOWN_SUFFIXES:
        markdown = read_markdown(text)
        return Document(title=markdown.title or path.name, text=markdown.text)
    return Document(title=path.name, text=text)


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
