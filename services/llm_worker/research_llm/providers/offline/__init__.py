"""The offline model: an Agents SDK `Model` that plans and writes without a language model.

It lets the same agents, `Runner` and structured outputs run with no network and no API key.
It reads the JSON prompt that `research_llm.agents` builds, sees which output type the agent
asks for, and answers with JSON of that type:

* `TriageOutput`: whether to ask the person first, decided from the question's words: too
  few key words, an "it" or "this error" that refers to nothing the question names, or a
  judgement ("best", "should I", "X vs Y") with no criteria; the reason names what is missing.
* `ClarifyOutput`: up to `max_questions` questions, what the question leaves open first
  (the referent, the criteria of a choice, the aspect), then scope, purpose and depth.
* `PlanOutput`: search queries made of the question's own key terms (the question in keyword
  form first, then its subjects, the comparison it implies, shorter forms of long concepts,
  and the facets such as examples or performance only when the question asks for them),
  narrowed by the key terms of the person's answers to clarifying questions, if any.
* `ReportOutput`: a report assembled extractively. Source text is split into sentences,
  sentences are ranked with BM25 against the question's, the answers' and the searches'
  terms (scaled by how many of those terms they name, how much of the question their source
  covers, and how well they read as prose rather than signatures or fragments), and the
  best ones are quoted verbatim, each followed by the `[id]` of its source. The answered
  clarifying questions are listed near the top, uncited.
* `ReflectOutput`: after a round of searches, done when the notes gathered name every concept
  of the question; otherwise the concepts they miss are the gaps, with follow-up queries
  made of them (and the planner's queries not searched yet).
* `ReviewOutput`: notes on a draft that cites nothing, leaves a concept of the question
  unnamed although a source covers it, or ignores an answer the person gave.
* `RevisionOutput`: the report written again with what the notes quote counted as part of
  the question when sentences are weighed.

Everything is deterministic: no randomness, no clock, no network; the same prompt gives the
same answer. Token counts are whitespace-separated words, an approximation of what a
tokenizer would count, so that usage metrics stay meaningful and comparable between runs.

The package is cut by concern: `_text` (words, folding, stemming, terms), `_question`
(concepts, setting, facets of a question), `_triage` (triage and clarifying questions),
`_plan` (search planning, narrowed by the answers), `_sentences` (passages, sentences and
how well they read), `_ranking` (BM25, term weights, near-duplicates), `_report` (the
report's sections, summary, clarifications and gaps), `_follow_ups` (follow-up questions),
`_reflect` (whether to search again), `_review` (review and revision of a draft) and
`_model` (the Agents SDK `Model`: prompt parsing, output types, responses, streaming).
"""

from research_llm.providers.offline._errors import OfflineModelError
from research_llm.providers.offline._model import OFFLINE_MODEL_NAME, OfflineModel
from research_llm.providers.offline._plan import plan_searches
from research_llm.providers.offline._report import NO_LLM_NOTICE, write_report
from research_llm.providers.offline._triage import clarifying_questions, triage_question

__all__ = [
    "NO_LLM_NOTICE",
    "OFFLINE_MODEL_NAME",
    "OfflineModel",
    "OfflineModelError",
    "clarifying_questions",
    "plan_searches",
    "triage_question",
    "write_report",
]
