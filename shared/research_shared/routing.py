"""Which task queues the orchestrator sends each activity to.

Set once by the orchestrator worker from its settings before it starts polling. Workflow
code imports this module through the sandbox's pass-through (like all of `research_shared`),
so the value the worker sets is the value every workflow run on that worker sees. It is
configuration, fixed for the worker's lifetime, and so does not break determinism. It lives
here rather than in the orchestrator package because the sandbox re-imports that package.
"""

from __future__ import annotations

from dataclasses import dataclass

from research_shared.names import LLM_QUEUE, SEARCH_QUEUE


@dataclass(frozen=True)
class Routing:
    search_queue: str = SEARCH_QUEUE
    llm_queue: str = LLM_QUEUE


_current = Routing()


def configure(routing: Routing) -> None:
    global _current
    _current = routing


def current() -> Routing:
    return _current
