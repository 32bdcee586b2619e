"""The four agents of the LLM worker (triage, clarifier, planner, writer), their structured
outputs, and the prompts they get.

The same agents run whatever the model behind them: an OpenAI-compatible endpoint or the
offline model. Each agent's input is one JSON document (built here), so a model, real or
offline, reads exactly the facts the activity has: the question, the limits, and for the
writer the numbered sources it may cite.
"""

from __future__ import annotations

import json

from agents import Agent, Model
from pydantic import BaseModel, Field

from research_shared.models import (
    Clarification,
    ClarifyInput,
    PlanInput,
    SynthesizeInput,
    TriageInput,
)

TRIAGE_NAME = "question_triage"
CLARIFIER_NAME = "clarifier"
PLANNER_NAME = "research_planner"
WRITER_NAME = "report_writer"


class TriageOutput(BaseModel):
    """Structured output of the triage agent."""

    needs_clarification: bool = Field(
        description="True if research would go astray without asking the person first."
    )
    reason: str = Field(description="One sentence: why, or why not.")


class ClarifyOutput(BaseModel):
    """Structured output of the clarifier."""

    questions: list[str] = Field(description="Short questions for the person, most useful first.")


class PlannedSearch(BaseModel):
    """One search the planner wants, with its reason."""

    query: str = Field(description="A web search query, a few words long.")
    reason: str = Field(description="Why this search helps answer the question.")


class PlanOutput(BaseModel):
    """Structured output of the planner."""

    searches: list[PlannedSearch]


class ReportOutput(BaseModel):
    """Structured output of the writer."""

    report_markdown: str = Field(
        description="The report in markdown, citing sources as [n] with their ids."
    )
    summary: str = Field(description="Two or three sentences that answer the question.")
    follow_up_questions: list[str] = Field(description="Questions worth researching next.")


TRIAGE_INSTRUCTIONS = """\
You decide whether a research question must be clarified with the person who asked it before
research starts. The input is JSON with a `question`. Answer `needs_clarification: true` only
if the question is ambiguous, too broad to research well, or depends on facts about the
person (their goal, constraints, context) that would change which sources matter."""

CLARIFIER_INSTRUCTIONS = """\
You write clarifying questions for the person who asked a research question. The input is
JSON with a `question` and `max_questions`. Write at most `max_questions` short, distinct
questions whose answers would most change how the research is planned. Do not answer the
question yourself."""

PLANNER_INSTRUCTIONS = """\
You plan web research. The input is JSON with a `question`, `max_searches`, and possibly
`clarifications`: questions the person answered, which narrow what to research.
Return between 1 and `max_searches` searches that together cover the question: its main
concepts, the comparisons or trade-offs it implies, and recent or authoritative sources.
Each search has a short `query` (what to type into a search engine) and a `reason`.
Do not repeat a query."""

WRITER_INSTRUCTIONS = """\
You write research reports. The input is JSON with a `question`, the `clarifications` the
person gave (questions and answers that narrow the question), the `searches` that were run,
the `sources` retrieved (each with an integer `id`, `title`, `url` and `content`), and
`failed_searches`. Write a markdown report that answers the question from the sources only.
Cite every claim with the id of its source in square brackets, like [2] or [1][3]. Cite
only ids that appear in `sources`; do not invent sources or add a bibliography, which is
appended for you. If searches failed or sources are thin, say so in the report. Also give a
short `summary` and a few `follow_up_questions`."""


def _agent(
    name: str, instructions: str, output_type: type[BaseModel], model: Model | str
) -> Agent[None]:
    return Agent(name=name, instructions=instructions, model=model, output_type=output_type)


def build_triage(model: Model | str) -> Agent[None]:
    return _agent(TRIAGE_NAME, TRIAGE_INSTRUCTIONS, TriageOutput, model)


def build_clarifier(model: Model | str) -> Agent[None]:
    return _agent(CLARIFIER_NAME, CLARIFIER_INSTRUCTIONS, ClarifyOutput, model)


def build_planner(model: Model | str) -> Agent[None]:
    return _agent(PLANNER_NAME, PLANNER_INSTRUCTIONS, PlanOutput, model)


def build_writer(model: Model | str) -> Agent[None]:
    return _agent(WRITER_NAME, WRITER_INSTRUCTIONS, ReportOutput, model)


def triage_prompt(request: TriageInput) -> str:
    return json.dumps({"question": request.question})


def clarify_prompt(request: ClarifyInput) -> str:
    return json.dumps({"question": request.question, "max_questions": request.max_questions})


def _answered(clarifications: list[Clarification]) -> list[dict[str, str]]:
    return [
        {"question": c.question, "answer": c.answer} for c in clarifications if c.answer is not None
    ]


def plan_prompt(request: PlanInput) -> str:
    data: dict[str, object] = {"question": request.question, "max_searches": request.max_searches}
    if request.clarifications:
        data["clarifications"] = _answered(request.clarifications)
    return json.dumps(data, ensure_ascii=False)


def synthesis_prompt(request: SynthesizeInput) -> str:
    return json.dumps(
        {
            "question": request.question,
            "searches": [q.model_dump() for q in request.queries],
            "sources": [
                {
                    "id": s.id,
                    "title": s.title,
                    "url": s.url,
                    "query_index": s.query_index,
                    "content": s.content,
                }
                for s in request.sources
            ],
            "failed_searches": [f.model_dump() for f in request.failed_searches],
            "clarifications": _answered(request.clarifications),
        },
        ensure_ascii=False,
    )
