"""A fake OpenAI endpoint: Chat Completions and Responses, non-streaming, over real HTTP.

It answers `POST /v1/chat/completions` and `POST /v1/responses` in the JSON shapes the
`openai` client parses, usage included, after checking the bearer key. With structured
output (a JSON schema in the request), the default answer is an example document built
from that schema, so any agent's output type gets a valid answer without a script; a test
that wants particular output sets `responder`. Faults (statuses, Retry-After, delays,
dropped connections) come from `FakeProviderServer`. A refused key is shown masked, as
OpenAI does; with `echo_rejected_key` it is quoted whole, as some compatible servers do.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.helpers.fakes.faultserver import Call, FakeProviderServer

RESPONSES_PATH = "/v1/responses"
CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
PATHS = {"responses": RESPONSES_PATH, "chat_completions": CHAT_COMPLETIONS_PATH}

Responder = Callable[[dict[str, Any]], str]


def error_body(message: str, type_: str, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error document, for injected faults and the fake's own refusals."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


@dataclass(frozen=True)
class ModelRequest:
    """What one request asked for, read from its recorded body and headers."""

    api: str
    model: str | None
    schema_name: str | None
    schema_title: str | None
    bearer: str | None
    outcome: str


@dataclass(frozen=True)
class Answer:
    """What the fake answered to one request that got through: text and reported usage."""

    api: str
    model: str
    text: str
    input_tokens: int
    output_tokens: int


class FakeOpenAIServer(FakeProviderServer):
    """An OpenAI-compatible server for tests; point a client at `api_base_url`."""

    def __init__(
        self,
        api_key: str = "sk-test-fake-key",
        responder: Responder | None = None,
        *,
        echo_rejected_key: bool = False,
    ):
        super().__init__()
        self.api_key = api_key
        self.echo_rejected_key = echo_rejected_key
        self.responder = responder
        self.answers: list[Answer] = []
        self._ids = itertools.count(1)
        self._answers_lock = threading.Lock()

    @property
    def api_base_url(self) -> str:
        """The base URL an OpenAI client takes (the `/v1` prefix included)."""
        return f"{self.base_url}/v1"

    def worker_env(self, api: str | None = None) -> dict[str, str]:
        """The settings that point an LLM worker at this server, speaking `api` when given
        ("responses" or "chat_completions"; else the worker's default)."""
        env = {
            "RESEARCH_LLM_PROVIDER": "openai",
            "OPENAI_API_KEY": self.api_key,
            "OPENAI_BASE_URL": self.api_base_url,
        }
        if api is not None:
            env["RESEARCH_OPENAI_API"] = api
        return env

    def calls_for(self, api: str) -> list[Call]:
        """Every request that reached the path of `api` ("responses" or "chat_completions")."""
        return self.calls_to(PATHS[str(api)])

    def requests_for(self, api: str) -> list[ModelRequest]:
        """`calls_for(api)` read as model requests: model name, schema name, bearer key."""
        return [_describe(str(api), call) for call in self.calls_for(api)]

    def answers_for(self, api: str) -> list[Answer]:
        """The successful answers given on `api`, in order."""
        with self._answers_lock:
            return [a for a in self.answers if a.api == str(api)]

    def reset(self) -> None:
        """Forget calls, answers and faults, and go back to schema-generated answers."""
        super().reset()
        self.responder = None
        with self._answers_lock:
            self.answers.clear()

    # -- protocol ------------------------------------------------------------------------

    def answer(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
        api = next((name for name, p in PATHS.items() if p == path), None)
        if api is None:
            return 404, error_body(f"Invalid URL (POST {path})", "invalid_request_error")
        refusal = self._check_key(headers)
        if refusal is not None:
            return 401, refusal
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return 400, error_body(
                "you must provide a model parameter", "invalid_request_error", "missing_model"
            )
        schema = _request_schema(api, body)
        if self.responder is not None:
            text = self.responder(body)
        elif schema is not None:
            text = json.dumps(example_for_schema(schema))
        else:
            text = f"A plain answer from {model}."
        prompt = [body.get("instructions"), body.get("input"), body.get("messages")]
        input_tokens = _count_tokens(json.dumps(prompt))
        output_tokens = _count_tokens(text)
        with self._answers_lock:
            self.answers.append(Answer(api, model, text, input_tokens, output_tokens))
        serial = next(self._ids)
        if api == "responses":
            return 200, self._response(body, model, text, input_tokens, output_tokens, serial)
        return 200, self._chat_completion(model, text, input_tokens, output_tokens, serial)

    def _check_key(self, headers: dict[str, str]) -> dict[str, Any] | None:
        auth = _header(headers, "authorization") or ""
        scheme, _, key = auth.partition(" ")
        if scheme.lower() == "bearer" and key == self.api_key:
            return None
        if not key:
            return error_body(
                "You didn't provide an API key.", "invalid_request_error", "missing_api_key"
            )
        # OpenAI shows the start and end of a wrong key; so does the fake, to keep the
        # provider honest about scrubbing what it passes on.
        shown = key if self.echo_rejected_key else key[:3] + "*" * max(len(key) - 7, 1) + key[-4:]
        return error_body(
            f"Incorrect API key provided: {shown}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        )

    @staticmethod
    def _response(
        body: dict[str, Any], model: str, text: str, input_tokens: int, output_tokens: int, n: int
    ) -> dict[str, Any]:
        now = int(time.time())
        instructions = body.get("instructions")
        return {
            "id": f"resp_fake{n:08d}",
            "object": "response",
            "created_at": now,
            "completed_at": now,
            "status": "completed",
            "model": model,
            "error": None,
            "incomplete_details": None,
            "instructions": instructions if isinstance(instructions, str) else None,
            "metadata": {},
            "output": [
                {
                    "type": "message",
                    "id": f"msg_fake{n:08d}",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            ],
            "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
            "temperature": 1.0,
            "top_p": 1.0,
            "tool_choice": body.get("tool_choice") or "auto",
            "tools": body.get("tools") or [],
            "text": body.get("text") or {"format": {"type": "text"}},
            "truncation": "disabled",
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
        }

    @staticmethod
    def _chat_completion(
        model: str, text: str, input_tokens: int, output_tokens: int, n: int
    ) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-fake{n:08d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": text,
                        "refusal": None,
                        "annotations": [],
                    },
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": input_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
        }


# -- reading requests --------------------------------------------------------------------


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


def _schema_format(api: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The `json_schema` block of a structured-output request, or None."""
    if api == "responses":
        text = body.get("text")
        fmt = text.get("format") if isinstance(text, dict) else None
    else:
        response_format = body.get("response_format")
        fmt = response_format.get("json_schema") if isinstance(response_format, dict) else None
    if not isinstance(fmt, dict) or not isinstance(fmt.get("schema"), dict):
        return None
    return fmt


def _request_schema(api: str, body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = _schema_format(api, body)
    return fmt["schema"] if fmt is not None else None


def _describe(api: str, call: Call) -> ModelRequest:
    fmt = _schema_format(api, call.body)
    auth = _header(call.headers, "authorization") or ""
    scheme, _, key = auth.partition(" ")
    model = call.body.get("model")
    return ModelRequest(
        api=api,
        model=model if isinstance(model, str) else None,
        schema_name=fmt.get("name") if fmt is not None else None,
        schema_title=fmt["schema"].get("title") if fmt is not None else None,
        bearer=key if scheme.lower() == "bearer" and key else None,
        outcome=call.outcome,
    )


def _count_tokens(text: str) -> int:
    # Roughly four characters a token, like OpenAI's rule of thumb; never zero.
    return max(1, len(text) // 4)


# -- example documents from JSON schemas ---------------------------------------------------

_MAX_DEPTH = 12


def example_for_schema(schema: dict[str, Any]) -> Any:
    """A document that validates against `schema`, built from the schema alone.

    Objects get every listed property, strings are made from the property name, arrays get
    two items (or what minItems/maxItems allow), numbers sit inside their bounds, and
    `$ref`s into `$defs`/`definitions` are followed.
    """
    return _Example(schema).build(schema, "value", 1, 0)


class _Example:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen: set[str] = set()
        while "$ref" in schema:
            ref = schema["$ref"]
            if ref in seen or not isinstance(ref, str) or not ref.startswith("#"):
                raise ValueError(f"cannot follow $ref {ref!r}")
            seen.add(ref)
            target: Any = self.root
            pointer = ref[1:].strip("/")
            for part in pointer.split("/") if pointer else []:
                target = target[part.replace("~1", "/").replace("~0", "~")]
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **siblings}
        return schema

    def build(self, schema: dict[str, Any] | bool, name: str, index: int, depth: int) -> Any:
        if not isinstance(schema, dict):
            return f"{name} {index}"
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][(index - 1) % len(schema["enum"])]
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                # Deep down a recursive schema, null (where allowed) ends the recursion.
                option = self._pick(schema[key], prefer_null=depth >= _MAX_DEPTH)
                return self.build(option, name, index, depth)
        if schema.get("allOf"):
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                part = self.resolve(part)
                props = {**merged.get("properties", {}), **part.get("properties", {})}
                merged = {**merged, **part, "properties": props}
            rest = {k: v for k, v in schema.items() if k != "allOf"}
            return self.build({**merged, **rest}, name, index, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else None
        if kind == "object":
            return self._object(schema, index, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind == "integer":
            return int(self._number(schema, index, integer=True))
        if kind == "number":
            return self._number(schema, index, integer=False)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self._string(schema, name, index)

    def _pick(self, options: list[Any], *, prefer_null: bool) -> Any:
        for option in options:
            resolved = self.resolve(option) if isinstance(option, dict) else option
            is_null = isinstance(resolved, dict) and resolved.get("type") == "null"
            if is_null is prefer_null:
                return option
        return options[0]

    def _object(self, schema: dict[str, Any], index: int, depth: int) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        if depth >= _MAX_DEPTH:
            properties = {k: v for k, v in properties.items() if k in required}
        return {key: self.build(sub, key, index, depth + 1) for key, sub in properties.items()}

    def _array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", max(low, 2)))
        count = low if depth >= _MAX_DEPTH else max(low, min(2, high))
        prefix: list[Any] = schema.get("prefixItems") or []
        items = schema.get("items", {})
        result = []
        for i in range(count):
            sub = prefix[i] if i < len(prefix) else items
            result.append(self.build(sub, name, i + 1, depth + 1))
        return result

    @staticmethod
    def _number(schema: dict[str, Any], index: int, *, integer: bool) -> float:
        step = 1 if integer else 0.5
        low = schema.get("minimum")
        if "exclusiveMinimum" in schema:
            low = schema["exclusiveMinimum"] + step
        high = schema.get("maximum")
        if "exclusiveMaximum" in schema:
            high = schema["exclusiveMaximum"] - step
        value: float = index if integer else index + 0.5
        if low is not None:
            value = max(value, low)
        if high is not None:
            value = min(value, high)
        multiple = schema.get("multipleOf")
        if multiple:
            value = (value // multiple) * multiple
            if low is not None and value < low:
                value += multiple
        return int(value) if integer else float(value)

    @staticmethod
    def _string(schema: dict[str, Any], name: str, index: int) -> str:
        fmt = schema.get("format")
        if fmt == "date-time":
            return f"2024-01-{min(index, 28):02d}T12:00:00Z"
        if fmt == "date":
            return f"2024-01-{min(index, 28):02d}"
        if fmt in ("uri", "url"):
            return f"https://example.com/{name}/{index}"
        if fmt == "email":
            return f"{name}{index}@example.com"
        if fmt == "uuid":
            return f"00000000-0000-4000-8000-{index:012d}"
        text = f"{name.replace('_', ' ')} {index}"
        low = int(schema.get("minLength", 0))
        if len(text) < low:
            text += "x" * (low - len(text))
        high = schema.get("maxLength")
        if high is not None:
            text = text[: int(high)]
        return text
