"""The contract between the services holds: stubs match the real activities, the orchestrator
carries no provider code, queues and settings behave as documented."""

from __future__ import annotations

import inspect
import subprocess
import sys
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio import activity

from research_llm.activities import LlmActivities
from research_llm.citations import appendix, cited_ids, drop_unknown_citations
from research_search.activities import SearchActivities
from research_shared.logs import redact_secrets
from research_shared.models import SearchFailure, SourceDocument
from research_shared.settings import (
    LlmProviderName,
    LlmSettings,
    SearchProviderName,
    SearchSettings,
    TemporalSettings,
)
from research_shared.temporal_client import tls_config
from tests.helpers.contract import activity_name, io_types, stub_activities


def _real_activities() -> dict[str, list[Any]]:
    """The activity methods of the two workers' activity classes, by registered name."""
    found: dict[str, list[Any]] = {}
    for owner in (LlmActivities, SearchActivities):
        for _, fn in inspect.getmembers(owner, inspect.isfunction):
            if activity._Definition.from_callable(fn) is not None:
                found.setdefault(activity_name(fn), []).append(fn)
    return found


@pytest.mark.parametrize("stub", stub_activities(), ids=activity_name)
def test_stub_matches_real_activity(stub: Any) -> None:
    real = _real_activities().get(activity_name(stub), [])
    assert len(real) == 1, f"{activity_name(stub)} is implemented {len(real)} times"
    assert io_types(stub) == io_types(real[0])


def test_every_real_activity_has_a_stub() -> None:
    assert set(_real_activities()) == {activity_name(stub) for stub in stub_activities()}


def test_orchestrator_imports_no_provider_code() -> None:
    code = (
        "import sys, research_orchestrator.worker, research_orchestrator.workflows\n"
        "bad = [m for m in ('httpx', 'tavily', 'openai', 'agents') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cited_ids_and_unknown_citations() -> None:
    text = "A [1]. B [2, 7]. C [7][3]. Link [x](http://a) and [^1] footnote."
    assert cited_ids(text) == [1, 2, 7, 3]
    assert drop_unknown_citations(text, {1, 2, 3}) == (
        "A [1]. B [2]. C [3]. Link [x](http://a) and [^1] footnote."
    )


def test_appendix_lists_sources_and_failures() -> None:
    sources = [SourceDocument(id=1, title="Doc", url="/corpus/a b.md")]
    failures = [SearchFailure(query="q", error_type="ProviderAuthError", message="bad key")]
    text = appendix(sources, failures)
    assert "1. [Doc](/corpus/a%20b.md)" in text
    assert "`q`: ProviderAuthError: bad key" in text
    assert "No sources were retrieved." in appendix([], [])


def test_provider_choice_follows_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAVILY_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert SearchSettings().resolved_provider() is SearchProviderName.LOCAL
    assert LlmSettings().resolved_provider() is LlmProviderName.OFFLINE
    monkeypatch.setenv("TAVILY_API_KEY", "tvly-abc")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abc")
    assert SearchSettings().resolved_provider() is SearchProviderName.TAVILY
    assert LlmSettings().resolved_provider() is LlmProviderName.OPENAI
    monkeypatch.setenv("RESEARCH_LLM_PROVIDER", "offline")
    assert LlmSettings().resolved_provider() is LlmProviderName.OFFLINE
    assert "sk-abc" not in repr(LlmSettings())


def test_api_key_implies_tls() -> None:
    assert tls_config(TemporalSettings(address="x:7233")) is False
    assert tls_config(TemporalSettings(address="x:7233", api_key=SecretStr("k"))) is True


def test_logs_mask_secrets() -> None:
    event = redact_secrets(
        None,
        "info",
        {"event": "calling with sk-abcdefghijklmnop", "api_key": "x", "n": 3},
    )
    assert event == {"event": "calling with ***", "api_key": "***", "n": 3}
