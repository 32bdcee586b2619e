"""Markdown files as text: the title, and the text without fence markers or HTML comments."""

from __future__ import annotations

import re

__all__ = ["markdown_text", "markdown_title"]

_CODE_FENCE = re.compile(r"^\s*(```|~~~)")
# A markdown file's HTML comments are invisible to its readers (notes, provenance, editor
# markers), so they are not searchable text either.
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_ATX_H1 = re.compile(r"^#[ \t]+(.+?)[ \t]*#*[ \t]*$")
_SETEXT_H1 = re.compile(r"^=+[ \t]*$")


def markdown_title(text: str) -> str:
    """The text of the first level-one heading outside code blocks; empty when there is none."""
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


def markdown_text(text: str) -> str:
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
