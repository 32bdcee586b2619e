"""HTML pages as text: the readable paragraphs, the title and the first h1.

Pages are parsed by lexbor (through selectolax), which builds the tree the HTML Standard
says a browser builds: `<!-->` is an empty comment, a `</script>` inside a script's string
does not end it, an unclosed `<p>` or `<li>` ends where a browser ends it. The text is then
read off that tree, a paragraph per block element.
"""

from __future__ import annotations

from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser, LexborNode

from research_search.corpus._text import collapse, decode_text

__all__ = ["HtmlPage", "read_html"]

# Not text a reader of the page reads: code, styling, menus, fallbacks, pictures.
_SKIPPED = frozenset({"script", "style", "nav", "noscript", "template", "svg"})
# Elements that start a new paragraph of text.
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl",
        "dt", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "li", "main", "ol", "p", "pre", "section", "summary", "table",
        "td", "th", "tr", "ul",
    }
)  # fmt: skip


@dataclass(frozen=True)
class HtmlPage:
    """What a reader sees of a page: its title, its first h1 and its paragraphs of text."""

    title: str
    first_h1: str
    paragraphs: list[str]


def read_html(data: bytes) -> HtmlPage:
    """The readable text of a page, without scripts, styles and navigation."""
    tree = _parse(data)
    reader = _TextReader()
    if tree.root is not None:
        reader.read(tree.root)
    return HtmlPage(title=reader.title, first_h1=reader.first_h1, paragraphs=reader.paragraphs)


def _parse(data: bytes) -> LexborHTMLParser:
    """The page's tree, decoded as it says it is encoded, or as UTF-8 or windows-1252.

    Valid UTF-8 is taken as UTF-8 even when the page declares otherwise: a local file that
    decodes cleanly was saved as UTF-8, whatever its `<meta>` still says. Otherwise a byte
    order mark or a `<meta charset>` decides, as in a browser; a page that declares nothing
    is read like any other text file.
    """
    # Scripting on, as in a browser that runs scripts: <noscript> is then one text node,
    # which is skipped, rather than markup that can push <head> elements into the body.
    try:
        return LexborHTMLParser(data.decode("utf-8-sig"), scripting=True)
    except UnicodeDecodeError:
        pass
    tree = LexborHTMLParser(data, encoding=True, scripting=True)
    if tree.raw_html != data:
        # Transcoded, so the page said what it is.
        return tree
    return LexborHTMLParser(decode_text(data), scripting=True)


class _TextReader:
    """Walks a tree in document order and collects its text, a paragraph per block."""

    def __init__(self) -> None:
        self.paragraphs: list[str] = []
        self.title = ""
        self.first_h1 = ""
        self._current: list[str] = []
        self._h1_parts: list[str] | None = None

    def read(self, root: LexborNode) -> None:
        # An explicit stack, not recursion: a page may nest elements thousands deep.
        # An entry with `closing` set marks the end of a block element.
        stack: list[tuple[LexborNode, bool]] = [(root, False)]
        while stack:
            node, closing = stack.pop()
            if closing:
                self._end_block(node.tag)
                continue
            if node.is_text_node:
                self._text(node.text_content or "")
                continue
            tag = node.tag
            if tag is None or tag.startswith("-") or tag in _SKIPPED:
                # Comments and the like, or a subtree no reader reads.
                continue
            if tag == "title":
                if not self.title:
                    self.title = collapse(node.text())
                continue
            if tag in _BLOCKS:
                self._flush()
                if tag == "h1" and not self.first_h1 and self._h1_parts is None:
                    self._h1_parts = []
                stack.append((node, True))
            stack.extend((child, False) for child in reversed(list(node.iter(include_text=True))))
        self._flush()

    def _text(self, text: str) -> None:
        self._current.append(text)
        if self._h1_parts is not None:
            self._h1_parts.append(text)

    def _end_block(self, tag: str | None) -> None:
        self._flush()
        if tag == "h1" and self._h1_parts is not None:
            self.first_h1 = collapse("".join(self._h1_parts))
            self._h1_parts = None

    def _flush(self) -> None:
        text = collapse("".join(self._current))
        self._current.clear()
        if text:
            self.paragraphs.append(text)
