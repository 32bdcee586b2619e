"""One mapping from a provider's failure to an `ApplicationError` the retry presets understand.

Both workers use it, so a 401 from Tavily and a 401 from an OpenAI-compatible server end
the same way: non-retryable, with a message that names the provider and the cause and never
the credential. Every provider text that goes into a message passes
`research_shared.redaction.redact` here first, before it is shortened (a cut could leave
half a key that no longer matches), so a provider's error path cannot forget it.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Final

from temporalio.exceptions import ApplicationError

from research_shared import errors
from research_shared.redaction import redact

MAX_RETRY_AFTER: Final = timedelta(minutes=1)
"""The longest Retry-After honoured; a longer one is waited for this long.

A provider that answers `Retry-After: 86400` would otherwise park a step for a day, and a
search far beyond its 10-minute schedule-to-close. One minute is the longest interval of
the presets' own backoff (the model presets' maximum interval), so a cut wait is still as
long as any the backoff itself could choose; and `web_search`'s five retries,
waiting this long each, stay inside its schedule-to-close, so a search that is refused on
every attempt uses all of them and is reported, not parked.
"""
_DETAIL_CHARS = 300

# Tavily answers 432 when the plan's limit is reached and 433 when pay-as-you-go is exhausted.
_QUOTA_STATUSES = {402, 432, 433}
# Body markers of an exhausted quota behind a 429 (OpenAI says "insufficient_quota").
_QUOTA_MARKERS = ("insufficient_quota", "quota", "usage limit", "plan limit")


def parse_retry_after(value: str | None, *, milliseconds: bool = False) -> timedelta | None:
    """The delay a Retry-After header asks for, capped at `MAX_RETRY_AFTER`.

    The header is in seconds; `milliseconds` reads a header in milliseconds instead (OpenAI's
    `retry-after-ms`). The HTTP-date form, and anything that is not a number, is absent.
    """
    if not value:
        return None
    try:
        amount = float(value.strip())
    except ValueError:
        return None
    if math.isnan(amount):
        return None
    seconds = amount / 1000 if milliseconds else amount
    # Clamped while still a float: "inf" or "1e300" would overflow a timedelta.
    return timedelta(seconds=min(max(0.0, seconds), MAX_RETRY_AFTER.total_seconds()))


def from_http_status(
    provider: str,
    status: int,
    detail: str = "",
    retry_after: timedelta | None = None,
) -> ApplicationError:
    """Classify an HTTP error answer of a provider; `detail` is redacted, then shortened."""
    detail = redact(detail).strip()[:_DETAIL_CHARS]
    if retry_after is not None:
        # A delay that did not come through `parse_retry_after` is held to the same cap.
        retry_after = min(max(retry_after, timedelta(0)), MAX_RETRY_AFTER)
    cause = f"{provider} answered HTTP {status}" + (f": {detail}" if detail else "")
    lowered = detail.lower()
    if status in (401, 403):
        return ApplicationError(
            f"{provider} rejected the credentials ({cause}); check the API key",
            type=errors.PROVIDER_AUTH,
            non_retryable=True,
        )
    if status in _QUOTA_STATUSES or (
        status == 429 and any(marker in lowered for marker in _QUOTA_MARKERS)
    ):
        return ApplicationError(
            f"{provider} quota is exhausted ({cause})",
            type=errors.PROVIDER_QUOTA,
            non_retryable=True,
        )
    if status == 429:
        return ApplicationError(
            f"{provider} is rate limiting ({cause})",
            type=errors.PROVIDER_RATE_LIMITED,
            next_retry_delay=retry_after,
        )
    if status in (400, 404, 413, 422):
        return ApplicationError(
            f"{provider} refused the request ({cause})",
            type=errors.PROVIDER_BAD_REQUEST,
            non_retryable=True,
        )
    return ApplicationError(
        f"{provider} is unavailable ({cause})",
        type=errors.PROVIDER_UNAVAILABLE,
        next_retry_delay=retry_after,
    )


def unavailable(provider: str, cause: BaseException | str) -> ApplicationError:
    """A timeout, refused or dropped connection: retried with backoff; `cause` is redacted."""
    text = redact(cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}")
    return ApplicationError(
        f"{provider} could not be reached ({text})",
        type=errors.PROVIDER_UNAVAILABLE,
    )
