"""Names other services and other languages rely on: workflow, activity, query and queue names."""

from typing import Final

WORKFLOW_TYPE: Final = "DeepResearchWorkflow"

PLAN_ACTIVITY: Final = "plan"
WEB_SEARCH_ACTIVITY: Final = "web_search"
SYNTHESIZE_ACTIVITY: Final = "synthesize"

STATUS_QUERY: Final = "status"

# Default task queues; each is overridable by a setting (see settings.QueueSettings).
ORCHESTRATOR_QUEUE: Final = "research-orchestrator"
SEARCH_QUEUE: Final = "research-search"
LLM_QUEUE: Final = "research-llm"
