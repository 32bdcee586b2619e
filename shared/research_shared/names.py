"""Names other services and other languages rely on: workflow, activity, query and queue names."""

from typing import Final

WORKFLOW_TYPE: Final = "DeepResearchWorkflow"

TRIAGE_ACTIVITY: Final = "triage"
CLARIFY_ACTIVITY: Final = "clarify"
PLAN_ACTIVITY: Final = "plan"
WEB_SEARCH_ACTIVITY: Final = "web_search"
SYNTHESIZE_ACTIVITY: Final = "synthesize"
RECORD_AUDIT_ACTIVITY: Final = "record_audit"

STATUS_QUERY: Final = "status"
ANSWER_UPDATE: Final = "answer_clarifications"
REVIEW_PLAN_UPDATE: Final = "review_plan"
PAUSE_SIGNAL: Final = "pause"
RESUME_SIGNAL: Final = "resume"
CANCEL_SIGNAL: Final = "cancel"

# Default task queues; each is overridable by a setting (see settings.QueueSettings).
ORCHESTRATOR_QUEUE: Final = "research-orchestrator"
SEARCH_QUEUE: Final = "research-search"
LLM_QUEUE: Final = "research-llm"
