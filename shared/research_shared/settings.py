"""Typed settings, read from environment variables when a process starts (never at import).

Every variable is listed in the README's settings table. Secrets are `SecretStr`, so they
never show in a repr, a log line or an exception message.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from research_shared.names import LLM_QUEUE, ORCHESTRATOR_QUEUE, SEARCH_QUEUE


def _from_env(prefix: str) -> SettingsConfigDict:
    # An empty variable (`OPENAI_BASE_URL=`) means "not set", as in compose files and shells.
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", env_ignore_empty=True)


def default_data_dir() -> Path:
    """Where the embedded stack keeps its SQLite file, corpus and index."""
    if os.environ.get("RESEARCH_DATA_DIR"):
        return Path(os.environ["RESEARCH_DATA_DIR"])
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "deep-research"


class TemporalSettings(BaseSettings):
    """How to reach the Temporal cluster: the embedded dev server, self-hosted, or Cloud."""

    model_config = _from_env("TEMPORAL_")

    address: str = "localhost:7233"
    namespace: str = "default"
    api_key: SecretStr | None = None
    tls: bool = False
    tls_cert: Path | None = Field(default=None, description="Client certificate (mTLS).")
    tls_key: Path | None = Field(default=None, description="Client private key (mTLS).")
    tls_ca: Path | None = Field(default=None, description="CA bundle for the server.")
    tls_server_name: str | None = None


class QueueSettings(BaseSettings):
    """Task queue names; the defaults are the public contract."""

    model_config = _from_env("RESEARCH_")

    orchestrator_queue: str = ORCHESTRATOR_QUEUE
    search_queue: str = SEARCH_QUEUE
    llm_queue: str = LLM_QUEUE


class SearchProviderName(StrEnum):
    AUTO = "auto"
    TAVILY = "tavily"
    LOCAL = "local"


class LlmProviderName(StrEnum):
    AUTO = "auto"
    OPENAI = "openai"
    OFFLINE = "offline"


class OpenAIApi(StrEnum):
    RESPONSES = "responses"
    CHAT_COMPLETIONS = "chat_completions"


class WorkerSettings(BaseSettings):
    """What every worker process shares: logging, metrics, shutdown."""

    model_config = _from_env("RESEARCH_")

    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|console)$")
    metrics_port: int = Field(default=0, ge=0, le=65535, description="0 turns /metrics off.")
    sdk_metrics_port: int = Field(default=0, ge=0, le=65535, description="Temporal SDK metrics.")
    graceful_shutdown_seconds: float = Field(default=20.0, ge=0)
    max_concurrent_activities: int = Field(default=20, ge=1)


class SearchSettings(BaseSettings):
    """Search provider choice and its options (search worker)."""

    model_config = _from_env("RESEARCH_")

    search_provider: SearchProviderName = SearchProviderName.AUTO
    tavily_api_key: SecretStr | None = Field(default=None, validation_alias="TAVILY_API_KEY")
    tavily_base_url: str = Field(
        default="https://api.tavily.com", validation_alias="TAVILY_BASE_URL"
    )
    tavily_timeout_seconds: float = Field(default=30.0, gt=0)
    corpus_dir: Path | None = Field(
        default=None, description="Folder of md, txt and html files; default: built-in corpus."
    )
    data_dir: Path = Field(default_factory=default_data_dir)

    def resolved_provider(self) -> SearchProviderName:
        if self.search_provider is not SearchProviderName.AUTO:
            return self.search_provider
        return SearchProviderName.TAVILY if self.tavily_api_key else SearchProviderName.LOCAL


class LlmSettings(BaseSettings):
    """Model provider choice and its options (LLM worker)."""

    model_config = _from_env("RESEARCH_")

    llm_provider: LlmProviderName = LlmProviderName.AUTO
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    openai_api: OpenAIApi = OpenAIApi.RESPONSES
    openai_timeout_seconds: float = Field(default=120.0, gt=0)
    plan_model: str = "gpt-4.1-mini"
    synthesize_model: str = "gpt-4.1"
    heartbeat_seconds: float = Field(default=3.0, gt=0)

    def resolved_provider(self) -> LlmProviderName:
        if self.llm_provider is not LlmProviderName.AUTO:
            return self.llm_provider
        return LlmProviderName.OPENAI if self.openai_api_key else LlmProviderName.OFFLINE
