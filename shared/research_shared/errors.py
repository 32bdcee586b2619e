"""Error types carried by `ApplicationError.type` across service boundaries.

Workers raise `ApplicationError` with one of these types; retry presets name the ones that
retrying cannot fix, and the workflow reports them in the run's result.
"""

from typing import Final

INVALID_REQUEST: Final = "InvalidResearchRequest"
"""The caller's input is wrong: a field, a value, or a payload that cannot be decoded. Never
retried; a workflow input like this fails the run, an update like this is refused."""

UPDATE_REFUSED: Final = "UpdateRefused"
"""A well-formed update the run cannot take now: nothing is waiting for it, or it does not fit
what is waiting (a question that does not exist, a plan longer than `max_searches`). The run
is unchanged. Never retried."""

PROVIDER_AUTH: Final = "ProviderAuthError"
"""The provider refused the credentials (401/403). Never retried."""

PROVIDER_BAD_REQUEST: Final = "ProviderBadRequest"
"""The provider refused the request as malformed (400/422). Never retried."""

PROVIDER_QUOTA: Final = "ProviderQuotaExhausted"
"""The account has no quota left; waiting seconds will not help. Never retried."""

PROVIDER_RATE_LIMITED: Final = "ProviderRateLimited"
"""429: retried, no sooner than the provider's Retry-After."""

PROVIDER_UNAVAILABLE: Final = "ProviderUnavailable"
"""5xx, timeouts, dropped connections: retried with backoff."""

MODEL_OUTPUT_INVALID: Final = "ModelOutputInvalid"
"""The model's answer did not fit the expected structure; a new attempt may do better."""

MODEL_USAGE: Final = "ModelUsageError"
"""The agent or model was used wrongly (a bug or a misconfiguration). Never retried."""

NON_RETRYABLE: Final = (
    INVALID_REQUEST,
    PROVIDER_AUTH,
    PROVIDER_BAD_REQUEST,
    PROVIDER_QUOTA,
    MODEL_USAGE,
)
