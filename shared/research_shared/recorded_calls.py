"""Nothing paid twice: each provider call's answer is recorded in the payload store, under an
idempotency key, before the activity goes on; a retried attempt reuses it instead of calling.

The key is stable across the attempts of one activity and differs for anything else: the
SHA-256 of the workflow id, the run id, the activity id (the same on every retry) and the
call's own input (method, address and body). So an attempt that dies after the provider
answered (the worker was killed, the attempt timed out while the call completed) leaves the
answer behind, and the next attempt of the same step finds it; a different step, query or run
finds nothing and calls. A run reset from an earlier point is a new run with the same
workflow id and the same activity ids: it asks again, as whoever reset it meant it to.
Only successful answers are recorded: a failure is meant to be tried again.

This module knows no HTTP library: `RecordingSend` is mixed into an httpx-style client, the
search worker's httpx client for Tavily and the LLM worker's httpx2 client for OpenAI, each
adding only how its library builds a response. Outside
an activity (a worker's start-up checks, tests calling a provider directly) nothing is
recorded. One window remains: a process that dies between the answer arriving and its
record being written (one local write or one PUT) pays again; docs/payloads.md says so.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

import structlog
from temporalio import activity

from research_shared import metrics
from research_shared.encryption import EncryptionError
from research_shared.store import Records, layout

log = structlog.get_logger(__name__)

_KEPT_HEADERS = ("content-type",)


@dataclass(frozen=True)
class RecordedAnswer:
    """A provider's successful answer, as the recording client replays it."""

    status: int
    headers: dict[str, str]
    body: bytes


class HttpCall(Protocol):
    """What the recorder reads of a request: httpx's and httpx2's alike."""

    @property
    def method(self) -> str: ...

    @property
    def url(self) -> object: ...

    @property
    def content(self) -> bytes: ...


class HttpAnswer(Protocol):
    """What the recorder reads of a response: httpx's and httpx2's alike."""

    @property
    def status_code(self) -> int: ...

    @property
    def is_success(self) -> bool: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content(self) -> bytes: ...


Answer = TypeVar("Answer", bound=HttpAnswer)
Request = TypeVar("Request", bound=HttpCall)


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
                info.workflow_run_id or "",
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
        """The answer recorded under `key` by an earlier attempt, if any.

        A record that cannot be read is as good as none: the call is made again, which is
        all a lost record costs. Records are not flushed to disk (`remember`), so a crash of
        the machine may leave one cut short.
        """
        assert self._records is not None
        info = activity.info()
        try:
            record = await self._records.get_json(key)
            if not isinstance(record, dict):
                return None
            answer = RecordedAnswer(
                status=int(record["status"]),
                headers={str(k): str(v) for k, v in dict(record["headers"]).items()},
                body=base64.b64decode(record["body"], validate=True),
            )
        except (EncryptionError, ValueError, KeyError, TypeError) as err:
            log.warning(
                "recorded provider answer unreadable; calling again",
                provider=self.provider,
                workflow_id=info.workflow_id,
                activity_id=info.activity_id,
                reason=type(err).__name__,
            )
            return None
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
        """Record a successful answer under `key`.

        Not flushed to disk: the record outlives the worker process at once, which is what
        a retry after a killed worker or a timed-out attempt needs, and only a crash of the
        machine within the next seconds can lose it, costing the call again. A flush per
        record would cost every call a few milliseconds to guard against that.
        """
        assert self._records is not None
        kept = {k.lower(): v for k, v in headers.items() if k.lower() in _KEPT_HEADERS}
        await self._records.put_json(
            key,
            {"status": status, "headers": kept, "body": base64.b64encode(body).decode()},
            durable=False,
        )

    async def call(
        self,
        method: str,
        url: str,
        body: bytes,
        send: Callable[[], Awaitable[Answer]],
        replay: Callable[[RecordedAnswer], Answer],
    ) -> Answer:
        """The answer to one call: an earlier attempt's, rebuilt by `replay`, when it recorded
        one; else `send()`'s, recorded when it is a success. Outside an activity or without
        a store, just `send()`."""
        key = self.key_for(method, url, body)
        if key is None:
            return await send()
        recorded = await self.recall(key)
        if recorded is not None:
            return replay(recorded)
        response = await send()
        if response.is_success:
            await self.remember(key, response.status_code, dict(response.headers), response.content)
        return response


class RecordingSend(Generic[Request, Answer]):
    """Mixed in before an httpx-style async client (httpx's, httpx2's): its `send` goes
    through a `CallRecorder` when one is given; streamed calls are never recorded.

    Wrapping `send`, not the transport, keeps the client's own proxy handling (HTTPS_PROXY
    mounts transports of its own, which a wrapped default transport would not see).
    """

    def __init__(self, *args: Any, recorder: CallRecorder | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recorder = recorder

    def replayed(self, request: Request, answer: RecordedAnswer) -> Answer:
        """The library's response holding a recorded answer to `request`."""
        raise NotImplementedError

    async def send(self, request: Request, **kwargs: Any) -> Answer:
        # The send of the client class this is mixed into, next in the resolution order.
        client_send: Callable[..., Awaitable[Answer]] = cast(Any, super()).send
        if self._recorder is None or kwargs.get("stream"):
            return await client_send(request, **kwargs)
        return await self._recorder.call(
            request.method,
            str(request.url),
            request.content,
            lambda: client_send(request, **kwargs),
            lambda answer: self.replayed(request, answer),
        )
