"""A run's budget: what its limits allow, what it has used, and whether to start more.

The workflow checks before each new round, search and review whether what is used plus what
the next step would need stays within every limit. The final write is always reserved: work
is started only while enough is left to write the report from what was gathered, and once a
limit is reached nothing new starts for the rest of the run. The reserve:

- tokens: a quarter of the characters of the gathered text (about a token per four
  characters) plus `WRITE_OVERHEAD_TOKENS` for instructions and the answer;
- cost: those tokens at the run's own average cost per token so far (zero before any priced
  call, and not counted at all for models without a price);
- time: the longest model step so far.

Usage comes from the activities (tokens and cost, priced by the LLM worker's table) and the
workflow's clock; all of it is replayed from the history, so the decisions are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from research_shared.models import Budget, BudgetLine, BudgetStatus, LlmUsage

WRITE_OVERHEAD_TOKENS = 1500


@dataclass
class BudgetTracker:
    """Limits, usage, and the checks the workflow makes before starting work."""

    limits: Budget
    started: datetime
    searches: int = 0
    """Searches started, over all rounds."""
    longest_step_seconds: float = 0.0
    exhausted: str = ""
    """The limit that ended research, once one has."""

    def step_took(self, seconds: float) -> None:
        """Note how long a model step took: the time the final write is reserved."""
        self.longest_step_seconds = max(self.longest_step_seconds, seconds)

    def check(
        self, now: datetime, usage: LlmUsage, *, text_chars: int, reserve_write: bool = True
    ) -> str:
        """The first limit that the next step would cross, or "" if none would.

        `reserve_write=False` checks the limits alone: how runs recorded before searches
        reserved the final write decided to start a search, kept so that they replay. Once
        a limit is reached the workflow stops asking (`exhausted` holds it), since the cost
        reserve, priced at the run's average so far, can shrink after a cheap step."""
        reserve_tokens = text_chars // 4 + WRITE_OVERHEAD_TOKENS if reserve_write else 0
        elapsed = (now - self.started).total_seconds()
        limits = self.limits
        if limits.max_searches_total is not None and self.searches >= limits.max_searches_total:
            return f"budget: max_searches_total {limits.max_searches_total} reached"
        if limits.max_total_tokens is not None and (
            usage.total_tokens + reserve_tokens >= limits.max_total_tokens
        ):
            return f"budget: max_total_tokens {limits.max_total_tokens} reached"
        if limits.max_cost_usd is not None:
            per_token = usage.cost_usd / usage.total_tokens if usage.total_tokens else 0
            if usage.cost_usd + reserve_tokens * per_token >= limits.max_cost_usd:
                return f"budget: max_cost_usd {limits.max_cost_usd:g} reached"
        if limits.max_wall_seconds is not None:
            reserve = self.longest_step_seconds if reserve_write else 0.0
            if elapsed + reserve >= limits.max_wall_seconds:
                return f"budget: max_wall_seconds {limits.max_wall_seconds} reached"
        return ""

    def stop(self, reason: str) -> None:
        """Record the limit that ended research (the first one wins)."""
        if reason and not self.exhausted:
            self.exhausted = reason

    def status(self, now: datetime, usage: LlmUsage) -> BudgetStatus:
        """Used and left for every limit set."""
        elapsed = round((now - self.started).total_seconds(), 3)
        used = {
            "max_total_tokens": float(usage.total_tokens),
            "max_cost_usd": round(usage.cost_usd, 6),
            "max_searches_total": float(self.searches),
            "max_wall_seconds": elapsed,
        }
        lines = []
        for name, spent in used.items():
            limit = getattr(self.limits, name)
            if limit is not None:
                lines.append(
                    BudgetLine(name=name, limit=limit, used=spent, left=max(0.0, limit - spent))
                )
        return BudgetStatus(
            lines=lines,
            tokens_used=usage.total_tokens,
            cost_usd=round(usage.cost_usd, 6),
            searches_used=self.searches,
            wall_seconds=elapsed,
            cost_complete=not usage.unpriced_models,
            unpriced_models=list(usage.unpriced_models),
            exhausted=self.exhausted,
        )
