"""Typed settings, read from environment variables when a process starts (never at import).

Every variable is listed in the README's settings table. Secrets are `SecretStr`, so they
never show in a repr, a log line or an exception message.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Self, get_args

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from research_shared.names import LLM_QUEUE, ORCHESTRATOR_QUEUE, SEARCH_QUEUE

TAVILY_MAX_TIMEOUT_SECONDS = 120.0
"""Tavily refuses longer waits, and its client silently caps its timeout at this value."""
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


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
    """What every worker process shares: logging, metrics and probes, connecting, shutdown."""

    model_config = _from_env("RESEARCH_")

    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: console text at a terminal, JSON lines elsewhere."
    )
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="/metrics, /readyz, /healthz; 0 turns them off."
    )
    sdk_metrics_port: int = Field(default=0, ge=0, le=65535, description="Temporal SDK metrics.")
    graceful_shutdown_seconds: float = Field(default=20.0, ge=0, allow_inf_nan=False)
    max_concurrent_activities: int = Field(default=20, ge=1)
    connect_retry_seconds: float = Field(
        default=30.0,
        ge=0,
        allow_inf_nan=False,
        description="How long the first connection to Temporal is retried; 0 tries once.",
    )
    liveness_stall_seconds: float = Field(
        default=30.0,
        gt=0,
        allow_inf_nan=False,
        description="/healthz fails once the event loop has been stuck this long.",
    )

    deployment_name: str | None = Field(
        default=None,
        description="Worker Versioning: the worker deployment this process belongs to.",
    )
    build_id: str | None = Field(
        default=None, description="Worker Versioning: this process's version of its deployment."
    )

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in _LOG_LEVELS:
            raise ValueError(f"should be one of {', '.join(_LOG_LEVELS)}")
        return value.upper()

    @field_validator("deployment_name", "build_id")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or value != value.strip()):
            raise ValueError("should be a name without surrounding spaces")
        return value

    @field_validator("deployment_name")
    @classmethod
    def _no_dot(cls, value: str | None) -> str | None:
        # Temporal writes a version as "<deployment>.<build id>".
        if value is not None and "." in value:
            raise ValueError("should not contain a dot")
        return value

    @model_validator(mode="after")
    def _versioned_together(self) -> Self:
        if (self.deployment_name is None) != (self.build_id is None):
            raise ValueError("RESEARCH_DEPLOYMENT_NAME and RESEARCH_BUILD_ID are set together")
        return self


class SearchSettings(BaseSettings):
    """Search provider choice and its options (search worker)."""

    model_config = _from_env("RESEARCH_")

    search_provider: SearchProviderName = SearchProviderName.AUTO
    tavily_api_key: SecretStr | None = Field(default=None, validation_alias="TAVILY_API_KEY")
    tavily_base_url: str = Field(
        default="https://api.tavily.com", validation_alias="TAVILY_BASE_URL"
    )
    tavily_timeout_seconds: float = Field(
        default=30.0, gt=0, le=TAVILY_MAX_TIMEOUT_SECONDS, allow_inf_nan=False
    )
    corpus_dir: Path | None = Field(
        default=None, description="Folder of md, txt and html files; default: built-in corpus."
    )
    data_dir: Path = Field(default_factory=default_data_dir)

    @model_validator(mode="after")
    def _tavily_has_a_key(self) -> Self:
        if self.tavily_api_key is not None and not self.tavily_api_key.get_secret_value().strip():
            # Blank is not "unset": tavily-python would switch to a keyless mode we do not support.
            raise ValueError("TAVILY_API_KEY is blank")
        if self.search_provider is SearchProviderName.TAVILY and self.tavily_api_key is None:
            raise ValueError("RESEARCH_SEARCH_PROVIDER=tavily needs TAVILY_API_KEY")
        return self

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
    openai_timeout_seconds: float = Field(default=120.0, gt=0, allow_inf_nan=False)
    plan_model: str = "gpt-4.1-mini"
    synthesize_model: str = "gpt-4.1"
    heartbeat_seconds: float = Field(default=3.0, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _openai_has_an_endpoint(self) -> Self:
        # A local OpenAI-compatible server (vLLM, Ollama, llama.cpp) may need no key.
        if (
            self.llm_provider is LlmProviderName.OPENAI
            and self.openai_api_key is None
            and self.openai_base_url is None
        ):
            raise ValueError("RESEARCH_LLM_PROVIDER=openai needs OPENAI_API_KEY or OPENAI_BASE_URL")
        return self

    def resolved_provider(self) -> LlmProviderName:
        if self.llm_provider is not LlmProviderName.AUTO:
            return self.llm_provider
        return LlmProviderName.OPENAI if self.openai_api_key else LlmProviderName.OFFLINE


# Every settings class a process loads from its environment, by the name pydantic gives its
# validation errors.
_SETTINGS_CLASSES: dict[str, type[BaseSettings]] = {
    cls.__name__: cls
    for cls in (TemporalSettings, QueueSettings, WorkerSettings, SearchSettings, LlmSettings)
}
_MAX_SHOWN_VALUE = 60


def _variable(cls: type[BaseSettings], name: str) -> tuple[str, FieldInfo | None]:
    """The environment variable behind a field (or its alias), and the field."""
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str) and alias.lower() == name.lower():
            return alias.upper(), field
        if field_name == name:
            if isinstance(alias, str):
                return alias.upper(), field
            return f"{cls.model_config.get('env_prefix', '')}{field_name}".upper(), field
    return name.upper(), None


def _is_secret(field: FieldInfo | None) -> bool:
    return field is not None and (
        field.annotation is SecretStr or SecretStr in get_args(field.annotation)
    )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN_VALUE else text[: _MAX_SHOWN_VALUE - 3] + "..."


def describe_settings_error(err: ValidationError) -> str | None:
    """One line naming each environment variable that failed and the rule it broke.

    None when `err` did not come from loading one of these settings classes. A secret's value
    is never shown.
    """
    cls = _SETTINGS_CLASSES.get(err.title)
    if cls is None:
        return None
    problems = []
    for error in err.errors(include_url=False):
        rule = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:
            problems.append(rule)  # a rule across fields names its variables itself
            continue
        variable, field = _variable(cls, str(error["loc"][0]))
        shown = "" if _is_secret(field) else f"={_shown(error['input'])}"
        problems.append(f"{variable}{shown}: {rule}")
    return "invalid settings: " + "; ".join(problems)
