"""Names other services and other languages rely on: workflow, activity, query and queue names."""

from typing import Final

WORKFLOW_TYPE: Final = "DeepResearchWorkflow"

TRIAGE_ACTIVITY: Final = "triage"
CLARIFY_ACTIVITY: Final = "clarify"
PLAN_ACTIVITY: Final = "plan"
WEB_SEARCH_ACTIVITY: Final = "web_search"
SYNTHESIZE_ACTIVITY: Final = "synthesize"
REFLECT_ACTIVITY: Final = "reflect"
REVIEW_ACTIVITY: Final = "review"
REVISE_ACTIVITY: Final = "revise"
RECORD_AUDIT_ACTIVITY: Final = "record_audit"

STATUS_QUERY: Final = "status"
ANSWER_UPDATE: Final = "answer_clarifications"
REVIEW_PLAN_UPDATE: Final = "review_plan"
EDIT_SEARCHES_UPDATE: Final = "edit_searches"
REVIEW_REPORT_UPDATE: Final = "review_report"
PAUSE_SIGNAL: Final = "pause"
RESUME_SIGNAL: Final = "resume"
CANCEL_SIGNAL: Final = "cancel"
FINISH_NOW_SIGNAL: Final = "finish_now"

OWNER_SEARCH_ATTRIBUTE: Final = "ResearchOwner"
"""A Keyword search attribute: who started a run through the HTTP API. The embedded dev
server registers it; a cluster needs `temporal operator search-attribute create --name
ResearchOwner --type Keyword` once per namespace."""

# Default task queues; each is overridable by a setting (see settings.QueueSettings).
ORCHESTRATOR_QUEUE: Final = "research-orchestrator"
SEARCH_QUEUE: Final = "research-search"
LLM_QUEUE: Final = "research-llm"
