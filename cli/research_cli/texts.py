"""What text a person may give the command: checked at the door, before anything starts.

The command line reaches Python as bytes decoded with `surrogateescape`: bytes that are not
UTF-8 become lone surrogates, which no JSON payload can carry. Control characters (other
than newline and tab) in a question, an answer or a query are pasted by accident and would
end up in prompts, reports and logs.
"""

from __future__ import annotations

import unicodedata

ALLOWED_CONTROLS = frozenset("\n\t")


def text_problem(value: str) -> str | None:
    """Why `value` is not acceptable text, or None when it is."""
    for char in value:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:
            # surrogateescape maps the undecodable byte B to U+DC00 + B.
            return f"is not valid UTF-8 text (byte 0x{code - 0xDC00:02x})"
        if 0xD800 <= code <= 0xDFFF:
            return "is not valid UTF-8 text"
        if unicodedata.category(char) == "Cc" and char not in ALLOWED_CONTROLS:
            return (
                f"contains the control character U+{code:04X} "
                "(only newline and tab may appear in text)"
            )
    return None
