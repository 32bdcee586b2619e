"""Agents SDK models backed by an OpenAI-compatible endpoint, and how their failures map.

One `openai.AsyncOpenAI` client serves every model of the worker. It never retries
(`max_retries=0`) and neither does the Agents SDK (its runner retries are opt-in and stay
off): Temporal owns retrying, so a failed call surfaces at once as an `ApplicationError`
whose type the retry presets understand. The endpoint may be OpenAI itself or any server
that speaks its Responses or Chat Completions protocol (vLLM, Ollama, llama.cpp server).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import agents
import openai
from agents.result import RunResultBase
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError

from research_llm.providers._recording import RecordingAsyncClient
from research_shared import errors
from research_shared.models import LlmUsage
from research_shared.provider_errors import from_http_status, parse_retry_after, unavailable
from research_shared.recorded_calls import CallRecorder
from research_shared.redaction import redact, register_secret
from research_shared.settings import OpenAIApi

OPENAI_PROVIDER = "OpenAI"

# Local servers (Ollama, llama.cpp) ignore the key, but the client insists on one.
_PLACEHOLDER_KEY = "no-key-needed"
_DETAIL_CHARS = 240


def configure_agents_sdk() -> None:
    """Keep the Agents SDK from calling home; the worker's `main()` calls this once.

    Tracing would otherwise export spans to OpenAI's servers (or warn about a missing key
    when the endpoint is not OpenAI's). Removing the exporting processor as well means that
    even a run that asks for a trace has nowhere to send it.
    """
    agents.set_tracing_disabled(True)
    agents.set_trace_processors([])


class OpenAICompatibleModels:
    """Hands out Agents SDK `Model`s that share one OpenAI client.

    `api` picks the wire protocol: the Responses API (OpenAI's own) or Chat Completions,
    which most self-hosted servers speak; `timeout` is in seconds, per HTTP request. `name`
    says which endpoint this is, for logs, metrics and error messages. The key goes to the
    client and is registered with `research_shared.redaction`, so it shows in no repr, log
    line or error message, even when a server echoes it back whole. With a `recorder`, every
    successful model answer is recorded in the payload store, and a retried attempt of the
    same step reuses it instead of paying for it again.
    """

    def __init__(
        self,
        *,
        api_key: SecretStr | str | None,
        base_url: str | None = None,
        api: OpenAIApi | str = OpenAIApi.RESPONSES,
        timeout: float = 120.0,
        recorder: CallRecorder | None = None,
    ) -> None:
        secret = SecretStr(api_key) if isinstance(api_key, str) else api_key
        if secret is None or not secret.get_secret_value():
            if base_url is None:
                raise ValueError("an API key is required to call OpenAI (set OPENAI_API_KEY)")
            secret = SecretStr(_PLACEHOLDER_KEY)
        if timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout}")
        if secret.get_secret_value() != _PLACEHOLDER_KEY:
            register_secret(secret)
        self.api = OpenAIApi(api)
        self.base_url = base_url
        self.timeout = timeout
        self.name = provider_label(base_url)
        self._client = openai.AsyncOpenAI(
            api_key=secret.get_secret_value(),
            base_url=base_url,
            timeout=timeout,
            # Temporal retries the activity with its own backoff and Retry-After handling;
            # a second layer here would multiply attempts and hide failures from history.
            max_retries=0,
            http_client=RecordingAsyncClient(recorder=recorder),
        )
        self._models: dict[str, agents.Model] = {}

    def __repr__(self) -> str:
        return (
            f"OpenAICompatibleModels(name={self.name!r}, api={self.api.value!r}, "
            f"timeout={self.timeout!r})"
        )

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The shared client, for callers that need the raw API."""
        return self._client

    def model_for(self, name: str) -> agents.Model:
        """The Agents SDK model for `name`, speaking the configured protocol."""
        if not name.strip():
            raise ValueError("the model name is empty")
        model = self._models.get(name)
        if model is None:
            if self.api is OpenAIApi.CHAT_COMPLETIONS:
                model = agents.OpenAIChatCompletionsModel(model=name, openai_client=self._client)
            else:
                model = agents.OpenAIResponsesModel(model=name, openai_client=self._client)
            self._models[name] = model
        return model

    async def aclose(self) -> None:
        """Close the client's connection pool."""
        await self._client.close()


def provider_label(base_url: str | None) -> str:
    """How error messages name the endpoint: OpenAI, or the host of a compatible server."""
    if base_url is None:
        return OPENAI_PROVIDER
    host = urlsplit(base_url).hostname
    if host is None or host == "api.openai.com":
        return OPENAI_PROVIDER
    return f"OpenAI-compatible server {host}"


def to_application_error(
    err: BaseException, provider: str = OPENAI_PROVIDER
) -> ApplicationError | None:
    """Classify a failure of a model call; `None` when it is not one we know.

    HTTP answers go through the shared status mapping (auth, bad request, quota, rate limit
    with Retry-After, unavailable); timeouts and broken connections are retryable; output
    that does not fit the agent's type is retryable as `MODEL_OUTPUT_INVALID`. The cause
    chain is followed through explicit wrapping (`raise ... from err`). Messages carry no
    registered key and nothing key-shaped (`research_shared.redaction`).
    """
    for candidate in _cause_chain(err):
        mapped = _map_one(candidate, provider)
        if mapped is not None:
            return mapped
    return None


def usage_of(result: RunResultBase) -> LlmUsage:
    """Model calls and tokens of one run, summed over the model's responses."""
    input_tokens = 0
    output_tokens = 0
    for response in result.raw_responses:
        input_tokens += response.usage.input_tokens or 0
        output_tokens += response.usage.output_tokens or 0
    return LlmUsage(
        calls=len(result.raw_responses),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )


def _cause_chain(err: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__


def _map_one(err: BaseException, provider: str) -> ApplicationError | None:
    if isinstance(err, ApplicationError):
        return err
    if isinstance(err, openai.APIStatusError):
        return from_http_status(
            provider,
            err.status_code,
            _status_detail(err),
            _retry_after(err),
        )
    if isinstance(err, openai.APIConnectionError):
        # APITimeoutError is a subclass; its message already says "Request timed out."
        return unavailable(provider, f"{type(err).__name__}: {err.message}")
    if isinstance(err, openai.APIResponseValidationError):
        return unavailable(provider, "the answer did not match the API's schema")
    if isinstance(err, agents.ModelTimeoutError):
        return unavailable(provider, str(err))
    if isinstance(
        err,
        agents.ModelBehaviorError
        | agents.ModelRefusalError
        | agents.MaxTurnsExceeded
        | openai.LengthFinishReasonError
        | openai.ContentFilterFinishReasonError,
    ):
        return ApplicationError(
            f"{provider} model output was unusable ({type(err).__name__}: "
            f"{_shorten(redact(str(err)))})",
            type=errors.MODEL_OUTPUT_INVALID,
        )
    return None


def _status_detail(err: openai.APIStatusError) -> str:
    """`code: message` from OpenAI's error body, or the start of whatever else came back.

    Redacted before it is shortened: a cut through a key would leave a part that no longer
    matches it.
    """
    body: Any = err.body
    if isinstance(body, dict):
        code = body.get("code") or body.get("type")
        message = body.get("message") or ""
        parts = [str(part) for part in (code, message) if part]
        if parts:
            return _shorten(redact(": ".join(parts)))
    if isinstance(body, str) and body.strip():
        return _shorten(redact(body.strip().splitlines()[0]))
    return ""


def _retry_after(err: openai.APIStatusError) -> timedelta | None:
    headers = err.response.headers
    delay = parse_retry_after(headers.get("retry-after"))
    if delay is None:
        delay = parse_retry_after(headers.get("retry-after-ms"), milliseconds=True)
    return delay


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 3] + "..."
