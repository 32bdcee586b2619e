"""Markdown files as text: the title, and the source without fence markers or HTML comments.

The structure comes from a CommonMark parser (markdown-it-py), so what counts as code, a
comment or a heading is what a markdown renderer would show: a `<!--` inside a code span is
code, a fence of tildes may hold a line of backticks, a heading may be indented. The text
itself stays the file's own, markup and all: the offline writer quotes sentences from hits,
and a quote must be found word for word in the file it cites.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.token import Token

from research_search.corpus._text import collapse

__all__ = ["MarkdownText", "read_markdown"]

# A markdown file's HTML comments are invisible to its readers (notes, provenance, editor
# markers), so they are not searchable text either. Inside an HTML block the parser found,
# an unclosed comment runs to the end of that block.
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)


@dataclass(frozen=True)
class MarkdownText:
    """A markdown file's title (empty without a level-one heading) and its searchable text."""

    title: str
    text: str


@functools.cache
def _parser() -> MarkdownIt:
    # CommonMark with raw HTML recognised, which is what finds the comments. The inline pass
    # is left to `_inline_comments`, for the few blocks that may hold a comment: on the
    # built-in corpus it would take about half of the parsing time for nothing.
    return MarkdownIt("commonmark", {"html": True}).disable("inline")


def read_markdown(source: str) -> MarkdownText:
    """The title and text of a markdown document.

    The title is the first level-one heading outside any container (a quote or a list). The
    text is the source with fence marker lines and HTML comments taken out; code inside
    fences stays searchable, and every other line is kept as written.
    """
    lines: list[str | None] = list(source.split("\n"))
    tokens = _parser().parse(source)
    title = ""
    for position, token in enumerate(tokens):
        if token.map is None:
            continue
        start, end = token.map
        if token.type == "heading_open" and token.tag == "h1" and token.level == 0 and not title:
            heading = tokens[position + 1]
            title = collapse(_remove_comments(heading.content, _inline_comments(heading)))
        elif token.type == "fence":
            # The code without the marker lines (and without a quote's "> " in front).
            _replace(lines, start, end, token.content.removesuffix("\n"))
        elif token.type == "html_block":
            block = "\n".join(line or "" for line in lines[start:end])
            if "<!--" in block:
                _replace(lines, start, end, _HTML_COMMENT.sub("", block))
        elif token.type == "inline" and (comments := _inline_comments(token)):
            block = "\n".join(line or "" for line in lines[start:end])
            _replace(lines, start, end, _remove_comments(block, comments))
    return MarkdownText(title=title, text="\n".join(line for line in lines if line is not None))


def _replace(lines: list[str | None], start: int, end: int, text: str) -> None:
    """Put `text` in place of lines `start` to `end`, keeping the other lines' numbers."""
    lines[start] = text
    for number in range(start + 1, end):
        lines[number] = None


def _inline_comments(token: Token) -> list[str]:
    """The HTML comments in the text of a paragraph or heading, in order."""
    if "<!--" not in token.content:
        return []
    parser = _parser()
    children: list[Token] = []
    parser.inline.parse(token.content, parser, {}, children)
    return [
        child.content
        for child in children
        if child.type == "html_inline" and child.content.startswith("<!--")
    ]


def _remove_comments(text: str, comments: list[str]) -> str:
    """`text` without each of `comments`, found in order."""
    cursor = 0
    for comment in comments:
        found = text.find(comment, cursor)
        if found < 0:
            # Split over lines of a quote, it is not verbatim in the source; left as it is.
            continue
        text = text[:found] + text[found + len(comment) :]
        cursor = found
    return text
