"""What can go wrong when a client steers a run, as typed exceptions.

Every failure of the Temporal client that a caller can act on becomes one of these, with a
one-line message: the CLI prints it, the HTTP API turns it into a status code.
"""

from __future__ import annotations

from research_shared import errors


class ResearchClientError(Exception):
    """Base of the client's errors; `message` is one line for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RunNotFound(ResearchClientError):
    """No run has this id, or it belongs to another owner, or it is not a research run."""


class RunConflict(ResearchClientError):
    """The id names a run that cannot be this one: started with another request, or by
    another owner."""


class InvalidRequest(ResearchClientError):
    """The request cannot be started as it is; nothing was started."""


class RunEnded(ResearchClientError):
    """The run has ended, so it can no longer be steered."""


class RunFailed(ResearchClientError):
    """The run failed (bad input, a bug), was terminated or timed out: it has no report."""


class UpdateRejected(ResearchClientError):
    """The run refused an update and is unchanged. `error_type` is the workflow's reason:
    `InvalidResearchRequest` (the input is wrong) or `UpdateRefused` (the run cannot take it
    now: nothing is pending, an index does not exist)."""

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.error_type = error_type

    @property
    def invalid_input(self) -> bool:
        return self.error_type == errors.INVALID_REQUEST


class StatusUnavailable(ResearchClientError):
    """The run exists but its status cannot be read now: no orchestrator worker has
    answered the query yet."""


class TemporalUnavailable(ResearchClientError):
    """Temporal cannot be reached, or does not answer in time."""
