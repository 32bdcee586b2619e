"""Docstrings as markdown: prose as paragraphs and lists, code in fenced blocks.

Docstrings are not reStructuredText that a parser would accept (most are plain text with
conventions: hanging indents, `term -- description` rows, doctests, underlined titles), so
their structure is read from blank lines, indentation and what a block looks like.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap

__all__ = ["docstring_markdown"]


def docstring_markdown(doc: str) -> str:
    """A docstring as markdown: prose as paragraphs and lists, code in fenced blocks.

    Blank lines and indentation are what structure a docstring: a block is code when it is
    a doctest (`>>>`), parses as Python, reads as symbols more than words, or is indented
    under a `::`; otherwise it is prose, and its hanging indents and `term -- description`
    lines become list items. Underlined titles become bold lines, so they do not break the
    document's heading levels. Every paragraph and list item is one line, so no wrapped
    line can be read as markdown syntax.
    """
    return "\n\n".join(_blocks(inspect.cleandoc(doc).splitlines(), literal=False))


_LIST_MARK = re.compile(r"^(?:[-*+\u2022]\s+|\d{1,3}[.)]\s+)(?=\S)")
_UNDERLINE = re.compile(r"^([=\-~^*+#])\1{2,}$")
# A definition: "name: what it is", "name -- what it is", or an aligned two-column row.
_TERM_LINE = re.compile(
    r"^(?:\S+\s{2,}\S|[\w.,*()\[\]/ ]{1,40}?:\s+\S|\S.{0,40}?\s--\s+\S|\S+\s-\s+\S)"
)
_CODE_HINT = re.compile(
    r"[(=\[{]|^\s*(?:#|(?:import|from|def|class|for|while|if|with|return|raise|try|async|"
    r"await|print)\b)",
    re.MULTILINE,
)
_CODE_SYMBOLS = frozenset("{}[]()=<>|\\$@^~*#&;")
_SPACES = re.compile(r"(?<=\S) {2,}(?=\S)")
_DIRECTIVE = re.compile(r"^\.\.\s+([\w-]+)::\s*(.*)$")
_DIRECTIVE_LABELS = {
    "versionadded": "Added in version",
    "versionchanged": "Changed in version",
    "deprecated": "Deprecated since version",
}
# Most of a block's items must define terms for it to read as a definition list.
_TERM_SHARE = 0.6


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _next_blank(lines: list[str], start: int) -> int:
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    return end


def _deeper_run(lines: list[str], start: int, depth: int) -> int:
    """The end of the lines from `start` on that are indented deeper than `depth`."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > depth):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return end


def _opens_block(line: str, deeper: list[str]) -> bool:
    """Whether the deeper lines under `line` are a block of their own, not its continuation.

    They are after a complete "Arguments:" line or a reST directive, or when they start a
    list, a definition, a doctest or Python code; otherwise they are the hanging indent of a
    wrapped item.
    """
    text = line.strip()
    if _DIRECTIVE.match(text) or (text.endswith(":") and text.count("(") == text.count(")")):
        return True
    first = deeper[0].strip()
    if first.startswith(">>>") or _LIST_MARK.match(first):
        return True
    if _TERM_LINE.match(first) and not _LIST_MARK.match(text):
        # Under a list item, "Name -- what it is" is the wrapped rest of the item.
        return True
    code = textwrap.dedent("\n".join(deeper))
    return bool(_CODE_HINT.search(code)) and _parses(code)


def _introduces_literal(line: str) -> bool:
    """Whether a line ends with reST's "::", which makes the indented block after it code."""
    text = line.strip()
    return text.endswith("::") and not _DIRECTIVE.match(text)


def _directive_text(text: str) -> str:
    """A reST directive line as plain words: ".. versionadded:: 3.8" -> "Added in version 3.8"."""
    directive = _DIRECTIVE.match(text)
    if directive is None:
        return text
    name, rest = directive.groups()
    label = _DIRECTIVE_LABELS.get(name, name.replace("-", " ").capitalize())
    if name in _DIRECTIVE_LABELS:
        return f"{label} {rest}".rstrip()
    return f"{label}: {rest}".rstrip() if rest else f"{label}:"


def _fence(language: str, lines: list[str]) -> str:
    body = textwrap.dedent("\n".join(lines)).strip("\n")
    return f"```{language}\n{body}\n```"


def _blocks(region: list[str], literal: bool) -> list[str]:
    """Lines of a docstring, or a block inside one: code fenced, prose as paragraphs and lists.

    Blank lines cut the lines into sub-blocks; consecutive code sub-blocks of one language
    share a fence.
    After a paragraph ending in "::", the sub-blocks indented deeper than its text are code.
    Prose sub-blocks that each define a term ("args: A string, or ...") become one list.
    """
    lines = textwrap.dedent("\n".join(region).rstrip()).splitlines()
    if literal:
        return [_fence(_code_language(lines), lines)]
    groups: list[tuple[bool, list[str]]] = []
    literal_depth: int | None = None
    start = 0
    while start < len(lines):
        if not lines[start].strip():
            start += 1
            continue
        end = _next_blank(lines, start)
        sub = lines[start:end]
        start = end
        if literal_depth is not None and min(_indent(line) for line in sub) <= literal_depth:
            literal_depth = None
        code = literal_depth is not None or _looks_like_code(sub)
        if (
            code
            and groups
            and groups[-1][0]
            and _code_language(groups[-1][1]) == (_code_language(sub))
        ):
            groups[-1][1].extend(["", *sub])
        else:
            groups.append((code, sub))
        if not code and _introduces_literal(sub[-1]):
            mark = _LIST_MARK.match(sub[0].strip())
            literal_depth = _indent(sub[0]) + (mark.end() if mark else 0)
    blocks: list[str] = []
    definitions = sum(1 for code, sub in groups if not code and _TERM_LINE.match(sub[0].strip()))
    as_list = definitions >= 2 and definitions >= _TERM_SHARE * len(groups)
    for code, sub in groups:
        if code:
            blocks.append(_fence(_code_language(sub), sub))
            continue
        prose = _prose_blocks(sub)
        if as_list and len(prose) == 1 and not prose[0].startswith(("- ", "**", "```")):
            prose = [f"- {prose[0]}"]
        if prose and blocks and _is_list(blocks[-1]) and _is_list(prose[0]):
            # One tight list rather than a paragraph per item.
            blocks[-1] = f"{blocks[-1]}\n{prose.pop(0)}"
        blocks.extend(prose)
    return blocks


def _is_list(block: str) -> bool:
    return block.startswith("- ")


def _looks_like_code(lines: list[str]) -> bool:
    first = lines[0].strip()
    if first.startswith("$ ") or any(line.lstrip().startswith(">>>") for line in lines):
        return True
    if _LIST_MARK.match(first) or _DIRECTIVE.match(first):
        return False
    if first.endswith(":") and not _CODE_HINT.search(first) and len(lines) > 1:
        # A title such as "Example:" over deeper lines: prose that holds a block.
        return _indent(lines[1]) <= _indent(lines[0])
    text = textwrap.dedent("\n".join(lines))
    if _CODE_HINT.search(text) and _parses(text):
        return True
    words = text.split()
    wordy = sum(1 for word in words if re.search(r"[^\W\d_]{2,}", word))
    symbols = sum(ch in _CODE_SYMBOLS for ch in text)
    return wordy < 0.5 * len(words) or symbols > 0.12 * len(text)


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return True


def _code_language(lines: list[str]) -> str:
    if any(line.lstrip().startswith(">>>") for line in lines):
        return "pycon"
    text = textwrap.dedent("\n".join(lines))
    return "python" if _parses(text) else "text"


def _prose_blocks(lines: list[str]) -> list[str]:
    """Prose lines as markdown paragraphs, list items and bold titles.

    A line indented deeper than the one above continues it (a hanging indent), unless the
    deeper lines open a block of their own (`_opens_block`), which is rendered on its own.
    """
    blocks: list[str] = []
    items: list[list[str]] = []
    base = min(_indent(line) for line in lines if line.strip())

    def flush() -> None:
        if items:
            blocks.extend(_render_items(items))
        items.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        text = line.strip()
        if not text or _UNDERLINE.match(text):
            i += 1
            continue
        if i + 1 < len(lines) and _UNDERLINE.match(lines[i + 1].strip()):
            flush()
            blocks.append(f"**{text.rstrip(':')}**")
            i += 2
            continue
        depth = _indent(line)
        mark = _LIST_MARK.match(text)
        if not items or depth <= base or mark:
            items.append([_directive_text(text)])
        else:
            items[-1].append(_directive_text(text))
        i += 1
        # A list item's own text starts after its mark; what is deeper than that belongs
        # to the item, and a paragraph in line with the text continues the item.
        inner = depth + (mark.end() if mark else 0)
        if i < len(lines) and lines[i].strip() and _indent(lines[i]) > inner:
            end = _deeper_run(lines, i, inner)
            if _opens_block(line, lines[i:end]):
                flush()
                blocks.extend(_blocks(lines[i:end], _introduces_literal(line)))
                i = end
    flush()
    return [_rst_colons(block) for block in blocks if block]


def _render_items(items: list[list[str]]) -> list[str]:
    """Items as one paragraph, or as a list when they define terms or are marked as one.

    A marked list runs to the end of the block and follows an introduction that ends a
    sentence or a clause; a "- " inside running text is a dash, not a list.
    """
    # Definitions are recognised before the alignment of their columns is collapsed.
    defined = sum(1 for item in items if _TERM_LINE.match(item[0]))
    texts = [_SPACES.sub(" ", " ".join(item)) for item in items]
    marked = [bool(_LIST_MARK.match(text)) for text in texts]
    terms = len(items) > 1 and defined >= _TERM_SHARE * len(items)
    first = marked.index(True) if any(marked) else len(items)
    listed = first < len(items) and all(marked[first:])
    if listed and first > 0 and not texts[first - 1].endswith((":", ".", "!", "?")):
        listed = False
    if not (listed or terms):
        return [" ".join(texts)]
    bullets: list[str] = []
    for text in texts if terms else texts[first:]:
        mark = _LIST_MARK.match(text)
        if mark is None:
            bullets.append(f"- {text}")
        elif mark.group(0)[:1].isdigit():
            bullets.append(text)
        else:
            bullets.append(f"- {text[mark.end() :]}")
    lead = " ".join(texts[:first]) if listed and not terms else ""
    return [lead, "\n".join(bullets)] if lead else ["\n".join(bullets)]


def _rst_colons(block: str) -> str:
    """reST's "for example::" reads "for example:" once the literal block is fenced."""
    if block.endswith("::") and not block.startswith("```"):
        return block[:-1].rstrip(":") + ":" if block.strip(":") else ""
    return block
