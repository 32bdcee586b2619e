"""The budget's checks, reserve and status, as the workflow uses them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from research_orchestrator._budget import WRITE_OVERHEAD_TOKENS, BudgetTracker
from research_shared.models import Budget, LlmUsage

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_no_limit_never_stops() -> None:
    tracker = BudgetTracker(limits=Budget(), started=START)
    usage = LlmUsage(input_tokens=10**9, cost_usd=10**6)
    assert tracker.check(START + timedelta(days=30), usage, text_chars=10**9) == ""
    assert tracker.status(START, usage).lines == []


def test_tokens_reserve_the_final_write() -> None:
    tracker = BudgetTracker(limits=Budget(max_total_tokens=10_000), started=START)
    usage = LlmUsage(input_tokens=5_000, output_tokens=1_000)
    # 6,000 used + 1,500 + 8,000 // 4 reserved = 9,500: room left.
    assert tracker.check(START, usage, text_chars=8_000) == ""
    assert tracker.check(START, usage, text_chars=10_000).startswith("budget: max_total_tokens")
    # Without the reserve (how runs recorded before searches reserved it decided), only the
    # tokens used count.
    assert tracker.check(START, usage, text_chars=10**6, reserve_write=False) == ""
    assert WRITE_OVERHEAD_TOKENS == 1500


def test_cost_reserve_uses_the_runs_own_price_per_token() -> None:
    tracker = BudgetTracker(limits=Budget(max_cost_usd=1.0), started=START)
    usage = LlmUsage(input_tokens=1_000, output_tokens=0, cost_usd=0.5)
    # 0.5 used; the write reserves 1,500 + 400 tokens at 0.0005 a token = 0.95: too much.
    assert tracker.check(START, usage, text_chars=1_600) == "budget: max_cost_usd 1 reached"
    assert tracker.check(START, usage, text_chars=0, reserve_write=False) == ""


def test_searches_and_time() -> None:
    tracker = BudgetTracker(limits=Budget(max_searches_total=2, max_wall_seconds=60), started=START)
    tracker.searches = 2
    assert tracker.check(START, LlmUsage(), text_chars=0) == "budget: max_searches_total 2 reached"
    tracker.searches = 0
    tracker.step_took(20)
    assert tracker.check(START + timedelta(seconds=30), LlmUsage(), text_chars=0) == ""
    late = START + timedelta(seconds=45)
    assert tracker.check(late, LlmUsage(), text_chars=0) == "budget: max_wall_seconds 60 reached"


def test_status_shows_used_and_left_and_unpriced_models() -> None:
    tracker = BudgetTracker(limits=Budget(max_total_tokens=100, max_cost_usd=2), started=START)
    usage = LlmUsage(input_tokens=30, output_tokens=10, cost_usd=0.5, unpriced_models=["mystery"])
    tracker.stop("budget: max_total_tokens 100 reached")
    tracker.stop("a later reason")
    status = tracker.status(START + timedelta(seconds=5), usage)
    assert [(line.name, line.used, line.left) for line in status.lines] == [
        ("max_total_tokens", 40, 60),
        ("max_cost_usd", 0.5, 1.5),
    ]
    assert not status.cost_complete and status.unpriced_models == ["mystery"]
    assert status.exhausted == "budget: max_total_tokens 100 reached"
    assert status.wall_seconds == 5
