"""How long an S3 store keeps each part, from how long a run lives and how long its history
and audit are kept. `deploy/s3/lifecycle.json` holds these figures as lifecycle rules, and
docs/payloads.md explains them; a test holds all three together.

An object's age counts from its newest write (`StoreDriver` writes an object again each
time a run stores the same bytes). A stored payload is read whenever its run's history is
replayed, which may happen at any point of the run's life, and then while the namespace
retains the closed run (the Web UI and codec server, a replay of an exported history).
A run waits for people up to three times, each wait at most `MAX_WAIT_SECONDS` (365 days):
for clarifying answers, for the plan's approval, for the report's sign-off. So a payload
written at the start must outlive three such waits and the retention. A run a person sends
back or pauses for longer than that outlives what it stored before: the local folder's
`deep-research gc` keeps what any run references, whatever its age, and a bucket serving
such runs needs longer rules.
"""

from __future__ import annotations

import math

from research_shared.models import MAX_WAIT_SECONDS
from research_shared.retry import (
    CLARIFY,
    PLAN,
    RECORD_AUDIT,
    REFLECT,
    REVIEW,
    REVISE,
    SYNTHESIZE,
    TRIAGE,
    WEB_SEARCH,
)
from research_shared.store._layout import AUDIT, CALLS, CONTENT, PAYLOADS, SEARCHES

DAY_SECONDS = 24 * 3600
TIMED_WAITS = 3
"""Clarification, plan approval, report review: the waits a run may spend in full."""
LONGEST_RUN_DAYS = math.ceil(TIMED_WAITS * MAX_WAIT_SECONDS / DAY_SECONDS)
MAX_RETENTION_DAYS = 90
"""The longest namespace retention the rules allow for (Temporal Cloud's maximum)."""
AUDIT_DAYS = 400
"""How long an audit manifest is kept after its run ends: more than a year of audits."""
CALLS_DAYS = 45
"""Recorded provider answers: read only by a retry of the step that recorded them."""
SEARCH_CACHE_DAYS = 7

EXPIRY_DAYS: dict[str, int] = {
    PAYLOADS: LONGEST_RUN_DAYS + MAX_RETENTION_DAYS,
    CALLS: CALLS_DAYS,
    SEARCHES: SEARCH_CACHE_DAYS,
    # Page text is written when it is searched and verified by the manifest written at the
    # run's end, which is kept AUDIT_DAYS.
    CONTENT: LONGEST_RUN_DAYS + AUDIT_DAYS,
    AUDIT: AUDIT_DAYS,
}
"""Days after its newest write that an object under each prefix may be deleted."""

LONGEST_STEP_SECONDS = max(
    preset.schedule_to_close.total_seconds()
    for preset in (
        WEB_SEARCH,
        TRIAGE,
        CLARIFY,
        PLAN,
        REFLECT,
        SYNTHESIZE,
        REVIEW,
        REVISE,
        RECORD_AUDIT,
    )
)
"""The longest a step retries: a recorded answer is never read after that."""
