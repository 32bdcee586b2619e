"""Nothing paid twice: each provider call's answer is recorded in the payload store, under an
idempotency key, before the activity goes on; a retried attempt reuses it instead of calling.

The key is stable across the attempts of one activity and differs for anything else: the
SHA-256 of the workflow id, the activity id (the same on every retry) and the call's own
input (method, address and body). So an attempt that dies after the provider answered (the
worker was killed, the attempt timed out while the call completed) leaves the answer
behind, and the next attempt of the same step finds it; a different step, query or run
finds nothing and calls. Only successful answers are recorded: a failure is meant to be
tried again.

This module knows no HTTP library: the search worker (httpx, for Tavily) and the LLM worker
(the OpenAI client's httpx2) each wrap their client's `send` around `CallRecorder`. Outside
an activity (a worker's start-up checks, tests calling a provider directly) nothing is
recorded. One window remains: a process that dies between the answer arriving and its
record being written (one local write or one PUT) pays again; docs/payloads.md says so.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

import structlog
from temporalio import activity

from research_shared import metrics
from research_shared.store import Records, layout

log = structlog.get_logger(__name__)

_KEPT_HEADERS = ("content-type",)


@dataclass(frozen=True)
class RecordedAnswer:
    """A provider's successful answer, as the recording client replays it."""

    status: int
    headers: dict[str, str]
    body: bytes


class CallRecorder:
    """Records and recalls provider answers of the running activity attempt."""

    def __init__(self, records: Records | None, provider: str) -> None:
        self._records = records
        self.provider = provider

    def key_for(self, method: str, url: str, body: bytes) -> str | None:
        """The store key of this call in the running activity; None outside an activity or
        without a store."""
        if self._records is None or not activity.in_activity():
            return None
        info = activity.info()
        identity = json.dumps(
            [
                info.workflow_id or "",
                info.activity_id,
                method.upper(),
                url,
                hashlib.sha256(body).hexdigest(),
            ]
        )
        return layout.call_key(
            info.workflow_id or "-", hashlib.sha256(identity.encode()).hexdigest()
        )

    async def recall(self, key: str) -> RecordedAnswer | None:
        """The answer recorded under `key` by an earlier attempt, if any."""
        assert self._records is not None
        record = await self._records.get_json(key)
        if not isinstance(record, dict):
            return None
        answer = RecordedAnswer(
            status=int(record["status"]),
            headers={str(k): str(v) for k, v in dict(record["headers"]).items()},
            body=base64.b64decode(record["body"]),
        )
        info = activity.info()
        metrics.ANSWERS_REUSED.labels(self.provider).inc()
        log.info(
            "provider answer reused",
            provider=self.provider,
            workflow_id=info.workflow_id,
            activity_id=info.activity_id,
            attempt=info.attempt,
        )
        return answer

    async def remember(self, key: str, status: int, headers: dict[str, str], body: bytes) -> None:
        """Record a successful answer under `key`."""
        assert self._records is not None
        kept = {k.lower(): v for k, v in headers.items() if k.lower() in _KEPT_HEADERS}
        await self._records.put_json(
            key,
            {"status": status, "headers": kept, "body": base64.b64encode(body).decode()},
        )
