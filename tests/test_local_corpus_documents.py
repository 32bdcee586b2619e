"""Reading files into documents: HTML and markdown to text, titles, and passages."""

from __future__ import annotations

from pathlib import Path

from research_search.corpus import PASSAGE_MAX_CHARS, extract_document, split_passages
from tests.helpers.corpus import filler


def test_html_is_reduced_to_text() -> None:
    page = b"""<html><head><title>Caf&eacute; &amp; Bar</title>
    <style>.menu { color: red }</style><script>var trackingPixel = 1;</script></head>
    <body><nav><a href="/">Home</a> <a href="/about">NavigationOnlyLink</a></nav>
    <h1>Opening   hours</h1>
    <p>We open at 8&nbsp;am &lt;every&gt; day.</p><p>Espresso costs &euro;2.</p>
    </body></html>"""

    doc = extract_document(Path("cafe.html"), page)

    assert doc.title == "Café & Bar"
    assert "trackingPixel" not in doc.text
    assert "color" not in doc.text
    assert "NavigationOnlyLink" not in doc.text
    assert doc.text.split("\n\n") == [
        "Opening hours",
        "We open at 8 am <every> day.",
        "Espresso costs €2.",
    ]


def test_html_title_falls_back_to_h1_then_file_name() -> None:
    with_h1 = extract_document(Path("a.htm"), b"<body><h1>The <em>real</em>ly good title</h1>")
    bare = extract_document(Path("b.html"), b"<p>just text</p>")

    assert with_h1.title == "The really good title"
    assert bare.title == "b.html"


def test_html_is_parsed_as_a_browser_parses_it() -> None:
    page = (
        b"<title>Parsing</title>"
        # Inside an escaped script, "</script>" in a string does not end the script.
        b'<script><!-- document.write("<script>x</script>") --></script>'
        # "<!-->" is an empty comment, not the start of one that swallows the text after it.
        b"<p>before<!-->after</p><ul><li>one<li>two</ul>"
    )

    doc = extract_document(Path("parsing.html"), page)

    assert doc.title == "Parsing"
    assert doc.text.split("\n\n") == ["beforeafter", "one", "two"]


def test_html_encoding_comes_from_the_page() -> None:
    declared = extract_document(
        Path("jp.html"),
        '<meta charset="shift_jis"><title>題名</title><p>日本語のテキスト</p>'.encode("shift_jis"),
    )
    marked = extract_document(
        Path("utf16.html"), "<title>Café</title><p>crème brûlée</p>".encode("utf-16")
    )
    undeclared = extract_document(Path("win.html"), "<p>Café costs €5</p>".encode("cp1252"))

    assert (declared.title, declared.text) == ("題名", "日本語のテキスト")
    assert (marked.title, marked.text) == ("Café", "crème brûlée")
    assert undeclared.text == "Café costs €5"


def test_markdown_comments_are_not_searchable_text() -> None:
    markdown = (
        "# Notes\n\n<!-- generated from the docstrings of Python 3.11.7 -->\n\n"
        "Visible <!-- inline note --> text.\n\n<!-- a note\nover two lines -->\n\n"
        "```html\n<!-- a comment in code stays -->\n```\n"
    )

    document = extract_document(Path("notes.md"), markdown.encode())

    assert document.title == "Notes"
    assert "generated" not in document.text
    assert "inline note" not in document.text and "over two lines" not in document.text
    assert "Visible  text." in document.text
    assert "<!-- a comment in code stays -->" in document.text


def test_markdown_and_text_titles() -> None:
    atx = extract_document(Path("a.md"), b"Intro line\n\n## Not this\n\n# The Title #\n\nBody")
    setext = extract_document(Path("b.md"), b"Setext Title\n============\n\nBody")
    fenced = extract_document(Path("c.md"), b"```\n# a comment in code\n```\n\ntext")
    plain = extract_document(Path("notes.txt"), b"# looks like a heading\n")

    assert atx.title == "The Title"
    assert setext.title == "Setext Title"
    assert fenced.title == "c.md"
    assert "```" not in fenced.text
    assert plain.title == "notes.txt"


def test_passages_follow_paragraphs_and_stay_bounded() -> None:
    text = "\n\n".join(filler(i) for i in range(40))
    one_line = "word " * 2000

    passages = split_passages(text)
    long_pieces = split_passages(one_line)

    assert len(passages) > 5
    assert all(len(p) <= PASSAGE_MAX_CHARS for p in passages + long_pieces)
    # Cut on paragraph boundaries: every paragraph lands whole in one passage.
    for i in range(40):
        assert sum(filler(i) in p for p in passages) == 1
    assert "".join(long_pieces).replace(" ", "") == one_line.replace(" ", "")


def test_markdown_code_is_told_from_comments_as_a_renderer_would() -> None:
    # "<!--" in a code span opens no comment: the rest of the file stays searchable.
    spans = extract_document(
        Path("html-notes.md"), b"Write `<!--` to open a comment.\n\nThe rest is about zebras.\n"
    )
    # A fence of tildes holds a line of backticks; the heading after it is the title, and the
    # comment after it is a comment, not code.
    fences = extract_document(
        Path("fences.md"),
        b"~~~\n```\n~~~\n\n  # The real title\n\nText <!-- hidden --> here.\n",
    )

    assert "zebras" in spans.text
    assert "Write `<!--` to open a comment." in spans.text
    assert fences.title == "The real title"
    assert "hidden" not in fences.text
    assert "Text  here." in fences.text
    assert fences.text.startswith("```\n")
    assert "~~~" not in fences.text
