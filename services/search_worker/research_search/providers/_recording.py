"""The httpx client of the Tavily provider, recording each successful answer under its call's
idempotency key and, on a retried attempt, replaying it instead of calling
(`research_shared.recorded_calls`)."""

from __future__ import annotations

import httpx

from research_shared.recorded_calls import RecordedAnswer, RecordingSend


class RecordingAsyncClient(RecordingSend[httpx.Request, httpx.Response], httpx.AsyncClient):
    """`httpx.AsyncClient` whose `send` goes through a `CallRecorder` when one is given."""

    def replayed(self, request: httpx.Request, answer: RecordedAnswer) -> httpx.Response:
        return httpx.Response(
            answer.status, headers=answer.headers, content=answer.body, request=request
        )
