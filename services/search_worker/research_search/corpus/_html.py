"""HTML pages as text: the readable paragraphs, the title and the first h1."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

from research_search.corpus._text import collapse

__all__ = ["HtmlPage", "read_html"]


@dataclass(frozen=True)
class HtmlPage:
    """What a reader sees of a page: its title, its first h1 and its paragraphs of text."""

    title: str
    first_h1: str
    paragraphs: list[str]


def read_html(text: str) -> HtmlPage:
    """The readable text of a page, without scripts, styles and navigation."""
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    return HtmlPage(title=parser.title, first_h1=parser.first_h1, paragraphs=parser.paragraphs)


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
                self.title = collapse("".join(self._title_parts))
        elif tag in self._BLOCKS:
            self._flush()
            if tag == "h1" and self._h1_depth:
                self._h1_depth -= 1
                if not self.first_h1:
                    self.first_h1 = collapse("".join(self._h1_parts))

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
            self.title = collapse("".join(self._title_parts))

    def _flush(self) -> None:
        text = collapse("".join(self._current))
        self._current.clear()
        if text:
            self.paragraphs.append(text)
