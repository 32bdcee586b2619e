"""The OpenAI client's HTTP client (httpx2), recording each successful answer under its
call's idempotency key and, on a retried attempt, replaying it instead of calling
(`research_shared.recorded_calls`)."""

from __future__ import annotations

import httpx2
import openai

from research_shared.recorded_calls import RecordedAnswer, RecordingSend


class RecordingAsyncClient(
    RecordingSend[httpx2.Request, httpx2.Response], openai.DefaultAsyncHttpxClient
):
    """The OpenAI client's default HTTP client (its timeouts, limits and redirects), whose
    `send` goes through a `CallRecorder` when one is given."""

    def replayed(self, request: httpx2.Request, answer: RecordedAnswer) -> httpx2.Response:
        return httpx2.Response(
            answer.status, headers=answer.headers, content=answer.body, request=request
        )
