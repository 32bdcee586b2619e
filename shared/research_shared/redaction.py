"""The one redactor: what logs, provider errors and failure messages pass through on their way
out of a process.

It removes two kinds of text. The configured secrets themselves, exactly: whoever holds a
credential (a provider client, the Temporal connection) registers it once with
`register_secret`, so a key that looks like nothing in particular is removed as surely as
one that starts with `sk-`. And anything shaped like a credential, for keys this process
never held (a provider echoing a masked key, a token in a URL): API keys with a known
prefix, bearer tokens, JWTs, `api_key=...` pairs.

Registered values shorter than `MIN_SECRET_CHARS` are ignored: a placeholder key such as
"none" would otherwise turn every "none" in every log line into the mask.
"""

from __future__ import annotations

import re
import threading
from typing import Final

from pydantic import SecretStr

MASK: Final = "***"
MIN_SECRET_CHARS: Final = 8

# Provider key prefixes: OpenAI (sk-, sk-proj-, restricted rk-), publishable pk-, Tavily
# (tvly-, tvly-dev-). The `*` admits the masked form providers echo ("sk-abc*****wxyz"); the
# last character is no dot or dash, so the full stop after a key stays.
_PREFIXED_KEY = r"\b(?:sk|rk|pk|tvly)-[A-Za-z0-9_*.\-]{5,}[A-Za-z0-9_*]"
# A JWT (Temporal Cloud API keys are JWTs): header and payload are base64url JSON, so both
# begin with "eyJ".
_JWT = r"\beyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*"
_SHAPED: Final = re.compile(f"{_PREFIXED_KEY}|{_JWT}")
# The scheme and the name stay, so a reader still sees what was removed.
_BEARER: Final = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/\-]{8,}=*")
_ASSIGNED: Final = re.compile(
    r"(?i)\b((?:api[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret|password)"
    r"[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;]+"
)

_lock = threading.Lock()
_registered: frozenset[str] = frozenset()
# One alternation of every registered value, longest first, so a secret that contains
# another is removed whole; None while nothing is registered.
_exact: re.Pattern[str] | None = None


def register_secret(value: SecretStr | str | None) -> None:
    """Have `redact` remove `value` wherever it appears, for the life of the process.

    Call it where a credential is held (a client built from settings). `None`, and values
    shorter than `MIN_SECRET_CHARS` after stripping, are ignored.
    """
    global _registered, _exact
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if text is None:
        return
    text = text.strip()
    if len(text) < MIN_SECRET_CHARS:
        return
    with _lock:
        if text in _registered:
            return
        _registered = _registered | {text}
        ordered = sorted(_registered, key=len, reverse=True)
        _exact = re.compile("|".join(re.escape(secret) for secret in ordered))


def redact(text: str) -> str:
    """`text` without the registered secrets and without anything shaped like a credential."""
    exact = _exact
    if exact is not None:
        text = exact.sub(MASK, text)
    text = _BEARER.sub(rf"\1{MASK}", text)
    text = _ASSIGNED.sub(rf"\1{MASK}", text)
    return _SHAPED.sub(MASK, text)
