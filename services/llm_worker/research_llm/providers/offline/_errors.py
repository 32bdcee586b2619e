"""The one error of the offline model."""

from __future__ import annotations

from agents.exceptions import UserError


class OfflineModelError(UserError):
    """The offline model cannot answer this request: unknown output type or unusable prompt.

    A `UserError` rather than a `ModelBehaviorError`: the model is deterministic, so asking
    again gives the same failure; the fault is in how it was called.
    """
