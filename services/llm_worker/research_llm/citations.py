"""Keeping a report's citations honest: every `[n]` must name a source retrieved in this run."""

from __future__ import annotations

import re

from research_shared.models import SearchFailure, SourceDocument

# [3] or [1, 4] or [2][5]; not markdown links like [text](url) nor footnotes like [^1].
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\](?!\()")


def cited_ids(markdown: str) -> list[int]:
    """Source ids cited in the text, in order of first citation."""
    seen: list[int] = []
    for match in _CITATION.finditer(markdown):
        for part in match.group(1).split(","):
            n = int(part)
            if n not in seen:
                seen.append(n)
    return seen


def drop_unknown_citations(markdown: str, known: set[int]) -> str:
    """Remove citations of ids that were not retrieved; keep the known ones of a group."""

    def keep(match: re.Match[str]) -> str:
        ids = [p.strip() for p in match.group(1).split(",")]
        kept = [i for i in ids if int(i) in known]
        return f"[{', '.join(kept)}]" if kept else ""

    return _CITATION.sub(keep, markdown)


def appendix(sources: list[SourceDocument], failures: list[SearchFailure]) -> str:
    """The sources list the citations resolve to, and the searches that failed."""
    lines = ["", "## Sources", ""]
    if sources:
        lines += [f"{s.id}. [{s.title}]({_link(s.url)})" for s in sources]
    else:
        lines.append("No sources were retrieved.")
    if failures:
        lines += ["", "## Searches that failed", ""]
        lines += [f"- `{f.query}`: {f.error_type}: {f.message}" for f in failures]
    return "\n".join(lines) + "\n"


def _link(url: str) -> str:
    # Local corpus hits are file paths; spaces would break a markdown link.
    return url.replace(" ", "%20")
