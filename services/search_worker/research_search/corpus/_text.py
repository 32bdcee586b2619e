"""Plain-text helpers shared by the readers, the index and the ranking."""

from __future__ import annotations

import re

__all__ = ["collapse", "decode_text", "truncate"]

_WHITESPACE = re.compile(r"\s+")


def collapse(text: str) -> str:
    """The text on one line: every run of whitespace becomes one space."""
    return _WHITESPACE.sub(" ", text).strip()


def decode_text(data: bytes) -> str:
    """Bytes of a file that declares no encoding: UTF-8 when they are, else windows-1252.

    Valid UTF-8 is almost never anything else; a file that is not is most likely from an
    editor on Windows. Latin-1 takes the five bytes windows-1252 leaves undefined, so
    decoding never fails.
    """
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def truncate(text: str, limit: int) -> str:
    """Cut at a word boundary with an ellipsis, so the result is at most `limit` characters."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"
