"""The Agents SDK `Model`: reads the agent's prompt and output type, answers with its JSON."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from agents import Model, ModelTracing
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import ModelResponse, TResponseInputItem, TResponseStreamEvent
from agents.tool import Tool
from agents.usage import Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseUsage,
)
from openai.types.responses.response_prompt_param import ResponsePromptParam
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails
from pydantic import BaseModel, ValidationError

from research_llm.agents import (
    ClarifyOutput,
    PlanOutput,
    ReflectOutput,
    ReportOutput,
    ReviewOutput,
    RevisionOutput,
    TriageOutput,
    read_prompt,
)
from research_llm.providers.offline._errors import OfflineModelError
from research_llm.providers.offline._plan import plan_searches
from research_llm.providers.offline._reflect import reflect
from research_llm.providers.offline._report import write_report
from research_llm.providers.offline._review import review, revise
from research_llm.providers.offline._triage import clarifying_questions, triage_question
from research_shared.models import (
    ClarifyInput,
    PlanInput,
    ReflectInput,
    ReviewInput,
    ReviseInput,
    SynthesizeInput,
    TriageInput,
)

if TYPE_CHECKING:
    from agents.model_settings import ModelSettings


OFFLINE_MODEL_NAME = "offline-extractive"
"""The name runs report for the offline model (in `PlanResult.model`, metrics, logs)."""


_Input = TypeVar("_Input", bound=BaseModel)


def _read(kind: type[_Input], payload: Mapping[str, Any], prompt: str) -> _Input:
    """The prompt's payload as the step's input model, or a clear error naming the prompt."""
    try:
        return kind.model_validate(payload)
    except ValidationError as exc:
        raise OfflineModelError(f"the {prompt} does not fit {kind.__name__}: {exc}") from None


def _writer_fields(payload: Mapping[str, Any]) -> dict[str, Any]:
    # The writer's prompt names the searches "searches"; the synthesis input calls them queries.
    return {
        "question": payload.get("question"),
        "queries": payload.get("searches", []),
        "sources": payload.get("sources", []),
        "failed_searches": payload.get("failed_searches", []),
        "clarifications": payload.get("clarifications", []),
    }


def _synthesis_input(payload: Mapping[str, Any]) -> SynthesizeInput:
    return _read(SynthesizeInput, _writer_fields(payload), "writer prompt")


def _revise_input(payload: Mapping[str, Any]) -> ReviseInput:
    fields = {
        **_writer_fields(payload),
        "draft_markdown": payload.get("draft_markdown", ""),
        "summary": payload.get("summary", ""),
        "notes": payload.get("notes", []),
        "round": payload.get("round", 1),
    }
    return _read(ReviseInput, fields, "reviser prompt")


# Each output type of `research_llm.agents` and how the offline model answers its prompt.
_ANSWERERS: dict[type[BaseModel], Callable[[Mapping[str, Any]], BaseModel]] = {
    TriageOutput: lambda p: triage_question(_read(TriageInput, p, "triage prompt")),
    ClarifyOutput: lambda p: clarifying_questions(_read(ClarifyInput, p, "clarifier prompt")),
    PlanOutput: lambda p: plan_searches(_read(PlanInput, p, "planner prompt")),
    ReportOutput: lambda p: write_report(_synthesis_input(p)),
    ReflectOutput: lambda p: reflect(_read(ReflectInput, p, "reflector prompt")),
    ReviewOutput: lambda p: review(_read(ReviewInput, p, "reviewer prompt")),
    RevisionOutput: lambda p: revise(_revise_input(p)),
}
_KNOWN_OUTPUTS = ", ".join(kind.__name__ for kind in _ANSWERERS)


def _count_words(text: str) -> int:
    """Whitespace-separated words: the offline model's stand-in for a tokenizer's count."""
    return len(text.split())


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts = []
        for part in content:
            kind = _field(part, "type")
            text = _field(part, "text")
            if kind in ("input_text", "output_text", "text") and isinstance(text, str):
                texts.append(text)
        return "".join(texts)
    return ""


def _field(item: Any, name: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


def _last_user_text(input: str | list[TResponseInputItem]) -> str:
    if isinstance(input, str):
        return input
    for item in reversed(input):
        if _field(item, "role") == "user":
            return _content_text(_field(item, "content"))
    raise OfflineModelError("the offline model got no user message to answer")


def _all_input_text(system_instructions: str | None, input: str | list[TResponseInputItem]) -> str:
    if isinstance(input, str):
        texts = [input]
    else:
        texts = [_content_text(_field(item, "content")) for item in input]
    return "\n".join([system_instructions or "", *texts])


def _parse_prompt(text: str) -> dict[str, Any]:
    """The facts of a prompt of `research_llm.agents`, each data block put back where its
    id says: a source's title and address, and its text as its `content` (a note's as its
    `note`); the draft as `draft_markdown` and `summary`."""
    try:
        read = read_prompt(text)
    except json.JSONDecodeError as exc:
        raise OfflineModelError(
            "the offline model expects the prompt built by research_llm.agents; its first "
            f"line is not JSON ({exc.msg} at position {exc.pos})"
        ) from None
    except ValueError as exc:
        raise OfflineModelError(f"the offline model cannot read the prompt: {exc}") from None
    payload = read.facts
    for key, field in (("sources", "content"), ("notes", "note")):
        items = payload.get(key)
        if not isinstance(items, list):
            continue
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("id"), int):
                continue
            block = read.sources.get(item["id"])
            if block is not None:
                item.update(title=block.title, url=block.url, **{field: block.text})
    if read.draft is not None:
        payload["draft_markdown"] = read.draft.report
        payload["summary"] = read.draft.summary
    return payload


def _schema_fields(output_schema: AgentOutputSchemaBase) -> frozenset[str]:
    properties = output_schema.json_schema().get("properties", {})
    return frozenset(properties) if isinstance(properties, dict) else frozenset()


def _respond(prompt: str, output_schema: AgentOutputSchemaBase | None) -> str:
    """The JSON text the agent's output type asks for."""
    if output_schema is None or output_schema.is_plain_text():
        raise OfflineModelError(
            f"the offline model answers only structured outputs ({_KNOWN_OUTPUTS}); "
            "this agent has no output type"
        )
    name = output_schema.name()
    fields = _schema_fields(output_schema)
    for kind, answer in _ANSWERERS.items():
        # The name alone could be another model's; its fields make it ours.
        if name == kind.__name__ and fields == frozenset(kind.model_fields):
            return answer(_parse_prompt(prompt)).model_dump_json()
    raise OfflineModelError(
        f"the offline model cannot produce output type {name!r}; it knows "
        f"{_KNOWN_OUTPUTS} from research_llm.agents"
    )


@dataclass(frozen=True)
class _Answer:
    """One answer of the offline model, in the two shapes the Agents SDK takes it in."""

    text: str
    input_words: int
    output_words: int

    @property
    def message(self) -> ResponseOutputMessage:
        """One assistant message holding the text; its id is the text's digest."""
        digest = hashlib.sha256(self.text.encode()).hexdigest()[:24]
        return ResponseOutputMessage(
            id=f"msg_offline_{digest}",
            type="message",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(type="output_text", text=self.text, annotations=[])],
        )

    def model_response(self) -> ModelResponse:
        """The answer as `Model.get_response` returns it."""
        return ModelResponse(
            output=[self.message],
            usage=Usage(
                requests=1,
                input_tokens=self.input_words,
                output_tokens=self.output_words,
                total_tokens=self.input_words + self.output_words,
            ),
            response_id=None,
        )

    def completed_event(self) -> ResponseCompletedEvent:
        """The answer as the one event of `Model.stream_response`: the completed response."""
        message = self.message
        response = Response(
            id=f"resp_{message.id.removeprefix('msg_')}",
            created_at=0.0,  # no clock: the same input gives the same event
            model=OFFLINE_MODEL_NAME,
            object="response",
            output=[message],
            parallel_tool_calls=False,
            tool_choice="none",
            tools=[],
            status="completed",
            usage=ResponseUsage(
                input_tokens=self.input_words,
                input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
                output_tokens=self.output_words,
                output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
                total_tokens=self.input_words + self.output_words,
            ),
        )
        return ResponseCompletedEvent(
            type="response.completed", response=response, sequence_number=0
        )


async def _answer(
    system_instructions: str | None,
    input: str | list[TResponseInputItem],
    output_schema: AgentOutputSchemaBase | None,
) -> _Answer:
    prompt = _last_user_text(input)
    # Ranking the sentences of many sources takes a moment of CPU; off the event loop, the
    # worker keeps heartbeating meanwhile.
    text = await asyncio.to_thread(_respond, prompt, output_schema)
    return _Answer(
        text=text,
        input_words=_count_words(_all_input_text(system_instructions, input)),
        output_words=_count_words(text),
    )


class OfflineModel(Model):
    """An Agents SDK model that answers every step of the research with no network and no key.

    It answers the triage (`TriageOutput`), the clarifier (`ClarifyOutput`), the planner
    (`PlanOutput`), the writer (`ReportOutput`), the reflector (`ReflectOutput`), the reviewer
    (`ReviewOutput`) and the reviser (`RevisionOutput`) of `research_llm.agents` from the
    prompt in the last user message; tools and handoffs are ignored. Usage reports one
    request per call, and counts whitespace-separated words of the input (instructions and
    messages) and of the output as tokens: an approximation, not a tokenizer's count.

    Both methods spell out the parameters of `Model`, which declares them abstract; the
    answer itself is made once, by `_answer`, and only shaped differently for each.
    """

    model_name = OFFLINE_MODEL_NAME

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        """Answer one turn: one assistant message holding the output type's JSON."""
        answer = await _answer(system_instructions, input, output_schema)
        return answer.model_response()

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        """Stream the same answer as `get_response`, as a single completed-response event."""
        answer = await _answer(system_instructions, input, output_schema)
        yield answer.completed_event()
