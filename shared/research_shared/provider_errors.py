"""One mapping from a provider's failure to an `ApplicationError` the retry presets understand.

Both workers use it, so a 401 from Tavily and a 401 from an OpenAI-compatible server end
the same way: non-retryable, with a message that names the provider and the cause and never
the credential. Every provider text that goes into a message passes
`research_shared.redaction.redact` here first, before it is shortened (a cut could leave
half a key that no longer matches), so a provider's error path cannot forget it.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from research_shared import errors
from research_shared.redaction import redact

_DETAIL_CHARS = 300

# Tavily answers 432 when the plan's limit is reached and 433 when pay-as-you-go is exhausted.
_QUOTA_STATUSES = {402, 432, 433}
# Body markers of an exhausted quota behind a 429 (OpenAI says "insufficient_quota").
_QUOTA_MARKERS = ("insufficient_quota", "quota", "usage limit", "plan limit")


def parse_retry_after(value: str | None) -> timedelta | None:
    """Seconds from a Retry-After header (the HTTP-date form is treated as absent)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return timedelta(seconds=max(0.0, seconds))


def from_http_status(
    provider: str,
    status: int,
    detail: str = "",
    retry_after: timedelta | None = None,
) -> ApplicationError:
    """Classify an HTTP error answer of a provider; `detail` is redacted, then shortened."""
    detail = redact(detail).strip()[:_DETAIL_CHARS]
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
