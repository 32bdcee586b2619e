"""The OpenAI client's HTTP client (httpx2), recording each successful answer under its
call's idempotency key and, on a retried attempt, replaying it instead of calling
(`research_shared.recorded_calls`)."""

from __future__ import annotations

from typing import Any

import httpx2
import openai

from research_shared.recorded_calls import CallRecorder


class RecordingAsyncClient(openai.DefaultAsyncHttpxClient):
    """The OpenAI client's default HTTP client (its timeouts, limits and redirects), whose
    `send` goes through a `CallRecorder` when one is given.

    Wrapping `send`, not the transport, keeps the client's own proxy handling (HTTPS_PROXY
    mounts transports of its own, which a wrapped default transport would not see).
    """

    def __init__(self, *args: Any, recorder: CallRecorder | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recorder = recorder

    async def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        recorder = self._recorder
        key = None
        if recorder is not None and not kwargs.get("stream"):
            key = recorder.key_for(request.method, str(request.url), request.content)
        if key is None:
            return await super().send(request, **kwargs)
        assert recorder is not None
        recorded = await recorder.recall(key)
        if recorded is not None:
            return httpx2.Response(
                recorded.status, headers=recorded.headers, content=recorded.body, request=request
            )
        response = await super().send(request, **kwargs)
        if response.is_success:
            await recorder.remember(
                key, response.status_code, dict(response.headers), response.content
            )
        return response
