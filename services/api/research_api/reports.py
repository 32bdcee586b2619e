"""A report as a person reads it: markdown, a standalone HTML page, a PDF.

HTML comes from markdown-it-py (CommonMark, raw HTML off: a report is written by a model
and must not carry markup of its own into our pages), with every citation `[n]` a link to
source `n` in the sources list. PDF comes from WeasyPrint, with fetching turned off: a
report may name any address, and rendering it must not make the server fetch them.
"""

from __future__ import annotations

import html
import re
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

from research_shared.models import ResearchReport

# [3] or [1, 4]; not markdown links like [text](url) nor footnotes like [^1].
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\](?!\()")
_SOURCES_HEADINGS = ("sources", "sources gathered")

_STYLE = """
body { font-family: "DejaVu Sans", system-ui, sans-serif; line-height: 1.5; color: #1b1b1b;
       max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; }
a { color: #0b57d0; } a.citation { text-decoration: none; }
blockquote { border-left: 4px solid #ccc; margin-left: 0; padding-left: 1rem; color: #444; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 0.9em; }
li:target { background: #fff3c4; }
"""


def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def link_citations(markdown: str, known: set[int]) -> str:
    """Each citation of a known source becomes a link to its entry in the sources list."""

    def linked(match: re.Match[str]) -> str:
        ids = [part.strip() for part in match.group(1).split(",")]
        if not all(int(i) in known for i in ids):
            return match.group(0)
        links = ", ".join(f"[{i}](#source-{i})" for i in ids)
        return f"\\[{links}\\]"

    return _CITATION.sub(linked, markdown)


def _anchor_sources(tokens: list[Token]) -> bool:
    """Give each item of the ordered list under a Sources heading the id its citations link
    to; whether there was such a list."""
    anchored = False
    under_sources = False
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            title = tokens[i + 1].content.strip().lower() if i + 1 < len(tokens) else ""
            under_sources = title in _SOURCES_HEADINGS
        elif under_sources and token.type == "list_item_open" and token.info.isdigit():
            token.attrSet("id", f"source-{token.info}")
            anchored = True
    return anchored


def report_body(report: ResearchReport) -> str:
    """The report as an HTML fragment (an `<article>`), its citations linked."""
    known = {source.id for source in report.sources}
    md = _markdown()
    tokens = md.parse(link_citations(report.report_markdown, known))
    anchored = _anchor_sources(tokens)
    body = md.renderer.render(tokens, md.options, {})
    if not anchored and report.sources:
        # A report whose text lists no sources still gets a list its citations resolve to.
        items = "".join(
            f'<li id="source-{s.id}" value="{s.id}"><a href="{html.escape(s.url)}">'
            f"{html.escape(s.title)}</a></li>"
            for s in report.sources
        )
        body += f"<h2>Sources</h2><ol>{items}</ol>"
    return f'<article class="report">{body}</article>'


def report_html(report: ResearchReport) -> str:
    """The report as a standalone HTML document."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(report.question)}</title><style>{_STYLE}</style></head>"
        f"<body>{report_body(report)}</body></html>"
    )


def _refuse_fetch(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    raise ValueError(f"the report renderer fetches nothing ({url})")


def report_pdf(report: ResearchReport) -> bytes:
    """The report as a PDF (CPU-bound: call it from a thread)."""
    from weasyprint import HTML  # imported here: it loads Pango, which takes a moment

    pdf: bytes = HTML(string=report_html(report), url_fetcher=_refuse_fetch).write_pdf()
    return pdf
