"""The typed client of research runs: `ResearchClient`, its models and its errors.

It imports no provider code, so any service can use it with the core dependencies alone.
"""

from research_shared.client._client import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    OWNER,
    InvalidPageToken,
    ResearchClient,
    execution_status,
    new_run_id,
    run_id_for_key,
)
from research_shared.client._errors import (
    InvalidRequest,
    ResearchClientError,
    RunConflict,
    RunEnded,
    RunFailed,
    RunNotFound,
    StatusUnavailable,
    TemporalUnavailable,
    UpdateRejected,
)
from research_shared.client._models import (
    EventType,
    ExecutionStatus,
    PendingQuestion,
    ResearchEvent,
    RunInfo,
    RunPage,
    RunSummary,
    StartedRun,
)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "OWNER",
    "EventType",
    "ExecutionStatus",
    "InvalidPageToken",
    "InvalidRequest",
    "PendingQuestion",
    "ResearchClient",
    "ResearchClientError",
    "ResearchEvent",
    "RunConflict",
    "RunEnded",
    "RunFailed",
    "RunInfo",
    "RunNotFound",
    "RunPage",
    "RunSummary",
    "StartedRun",
    "StatusUnavailable",
    "TemporalUnavailable",
    "UpdateRejected",
    "execution_status",
    "new_run_id",
    "run_id_for_key",
]
