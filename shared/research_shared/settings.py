"""Typed settings, read from environment variables when a process starts (never at import).

Every variable is listed in the README's settings table. Secrets are `SecretStr`, so they
never show in a repr, a log line or an exception message.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    max_cached_workflows: int = Field(
        default=500,
        ge=0,
        description=(
            "Orchestrator: runs kept in memory between their tasks, about 115 KiB each; a run "
            "past it is evicted and replays its history when it next has work."
        ),
    )
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
    search_rate_limit: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Activities per second on the search queue, for the whole fleet.",
    )

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


class ModelPrice(BaseModel):
    """What a model costs, in US dollars per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input_per_million: float = Field(ge=0, allow_inf_nan=False)
    output_per_million: float = Field(ge=0, allow_inf_nan=False)


DEFAULT_MODEL_PRICES: dict[str, ModelPrice] = {
    # OpenAI's list prices for standard processing (USD per 1M tokens); override or extend
    # them with RESEARCH_MODEL_PRICES. A model missing here is used, but its cost is not
    # counted, and the run's status says so.
    "gpt-4.1": ModelPrice(input_per_million=2.00, output_per_million=8.00),
    "gpt-4.1-mini": ModelPrice(input_per_million=0.40, output_per_million=1.60),
    "gpt-4.1-nano": ModelPrice(input_per_million=0.10, output_per_million=0.40),
    "gpt-4o": ModelPrice(input_per_million=2.50, output_per_million=10.00),
    "gpt-4o-mini": ModelPrice(input_per_million=0.15, output_per_million=0.60),
    "o4-mini": ModelPrice(input_per_million=1.10, output_per_million=4.40),
    # The offline model calls nothing and costs nothing.
    "offline-extractive": ModelPrice(input_per_million=0.0, output_per_million=0.0),
}


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
    llm_rate_limit: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Activities per second on the LLM queue, for the whole fleet.",
    )
    # Read as text and decoded below, so that text which is not JSON is a settings error
    # naming the variable, as every other bad value is, not pydantic-settings' own exception.
    model_prices: Annotated[dict[str, ModelPrice], NoDecode] = Field(
        default_factory=dict,
        description="JSON object of model name -> {input_per_million, output_per_million}, "
        "merged over the built-in table.",
    )

    def price_table(self) -> dict[str, ModelPrice]:
        """The built-in prices with this worker's own over them."""
        return {**DEFAULT_MODEL_PRICES, **self.model_prices}

    @field_validator("model_prices", mode="before")
    @classmethod
    def _prices_from_json(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc.msg} at position {exc.pos})") from None

    @field_validator("model_prices")
    @classmethod
    def _plain_model_names(cls, value: dict[str, ModelPrice]) -> dict[str, ModelPrice]:
        # The table is looked up by the exact name a step runs; " gpt-4.1" would never match,
        # and the cost it was meant to count would silently go uncounted.
        for name in value:
            if not name.strip() or name != name.strip():
                raise ValueError(f"model name {name!r} is blank or has surrounding spaces")
        return value

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


DEFAULT_API_PORT = 8234
"""The port of the API in Temporal's deep-research tutorial, which people already know."""
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiSettings(BaseSettings):
    """The HTTP API: where it listens and whose keys it accepts.

    `RESEARCH_API_KEYS` holds comma-separated `owner:sha256-hex` pairs: each key is stored as
    the SHA-256 of its text, never the key itself, and names the owner whose runs it may
    see. Without keys the API serves everyone as one unscoped caller, which is allowed on a
    loopback address only.
    """

    model_config = _from_env("RESEARCH_")

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=DEFAULT_API_PORT, ge=1, le=65535)
    api_keys: SecretStr | None = Field(
        default=None, description="Comma-separated owner:sha256-hex-of-the-key pairs."
    )

    @field_validator("api_keys")
    @classmethod
    def _pairs(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        for n, pair in enumerate(value.get_secret_value().split(","), 1):
            owner, sep, digest = pair.strip().partition(":")
            if not sep or not _OWNER.fullmatch(owner):
                raise ValueError(
                    f"pair {n} is not owner:sha256-hex (an owner is 1 to 64 letters, digits, "
                    "'.', '_' or '-')"
                )
            if not _SHA256_HEX.fullmatch(digest.strip().lower()):
                raise ValueError(
                    f"pair {n} ({owner}): the hash is not 64 hexadecimal digits "
                    "(store the SHA-256 of the key, not the key)"
                )
        return value

    @model_validator(mode="after")
    def _keys_beyond_loopback(self) -> Self:
        if not self.key_owners() and not is_loopback(self.api_host):
            raise ValueError(
                f"RESEARCH_API_HOST={self.api_host} listens beyond this machine: "
                "set RESEARCH_API_KEYS, or listen on 127.0.0.1"
            )
        return self

    def key_owners(self) -> dict[str, str]:
        """SHA-256 hex digest of each accepted key -> the owner it names."""
        if self.api_keys is None:
            return {}
        owners = {}
        for pair in self.api_keys.get_secret_value().split(","):
            owner, _, digest = pair.strip().partition(":")
            owners[digest.strip().lower()] = owner
        return owners


PAYLOAD_STORE_OFF = "none"
"""The value of RESEARCH_PAYLOAD_STORE that keeps every payload in the history itself."""
DEFAULT_PAYLOAD_THRESHOLD_BYTES = 4096
"""Payloads at least this large (after encryption) are stored aside; smaller ones stay inline.

A web search result with page text is tens of kilobytes and goes to the store; plans, search
inputs, statuses and most model step inputs stay readable in the history."""
ENCRYPTION_KEY_BYTES = 32


def decode_key(text: str, where: str) -> bytes:
    """A 32-byte AES key from its base64 text; the message names `where`, never the key."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where} is not base64") from None
    if len(key) != ENCRYPTION_KEY_BYTES:
        raise ValueError(
            f"{where} holds {len(key)} bytes; an AES-256 key is {ENCRYPTION_KEY_BYTES} bytes "
            "(make one with: openssl rand -base64 32)"
        )
    return key


class PayloadSettings(BaseSettings):
    """Where large payloads are stored aside, and the keys payloads are encrypted with.

    Every process loads these: the workers, the CLI, the codec server, the tests. They must
    agree, or one process cannot read what another wrote.
    """

    model_config = _from_env("RESEARCH_")

    payload_store: str | None = Field(
        default=None,
        description="file:///path, s3://bucket/prefix, or none; default: a folder under "
        "RESEARCH_DATA_DIR.",
    )
    payload_store_threshold: int = Field(default=DEFAULT_PAYLOAD_THRESHOLD_BYTES, ge=0)
    s3_endpoint_url: str | None = Field(
        default=None, description="An S3-compatible service (MinIO, GCS's S3 API)."
    )
    s3_region: str | None = None
    s3_access_key_id: str | None = Field(default=None, validation_alias="AWS_ACCESS_KEY_ID")
    s3_secret_access_key: SecretStr | None = Field(
        default=None, validation_alias="AWS_SECRET_ACCESS_KEY"
    )
    s3_session_token: SecretStr | None = Field(default=None, validation_alias="AWS_SESSION_TOKEN")
    encryption_key: SecretStr | None = Field(
        default=None, description="base64 of 32 bytes: the key new payloads are encrypted with."
    )
    encryption_key_file: Path | None = Field(
        default=None,
        description="A file of base64 keys, one a line: the first encrypts, every one decrypts.",
    )
    encryption_previous_keys: SecretStr | None = Field(
        default=None, description="Comma-separated base64 keys that still decrypt (rotation)."
    )
    data_dir: Path = Field(default_factory=default_data_dir)

    @field_validator("payload_store")
    @classmethod
    def _known_store(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() == PAYLOAD_STORE_OFF:
            return value if value is None else PAYLOAD_STORE_OFF
        value = value.strip()
        if value.startswith("file://"):
            if not value.removeprefix("file://").startswith("/"):
                raise ValueError("a file store needs an absolute path: file:///path/to/folder")
            return value
        if value.startswith("s3://"):
            if not value.removeprefix("s3://").split("/", 1)[0]:
                raise ValueError("an S3 store needs a bucket: s3://bucket/prefix")
            return value
        raise ValueError("should be file:///path, s3://bucket/prefix or none")

    @model_validator(mode="after")
    def _keys_readable(self) -> Self:
        self.encryption_keys()  # a bad key stops the process when its settings load
        return self

    def store_url(self) -> str | None:
        """The store in use: the setting, or the folder under RESEARCH_DATA_DIR; None if off."""
        if self.payload_store == PAYLOAD_STORE_OFF:
            return None
        if self.payload_store is None:
            return f"file://{(self.data_dir / 'payloads').expanduser().absolute()}"
        return self.payload_store

    def encryption_keys(self) -> list[bytes]:
        """The keys, the one that encrypts first; empty when encryption is off."""
        keys: list[bytes] = []
        if self.encryption_key is not None:
            keys.append(
                decode_key(self.encryption_key.get_secret_value(), "RESEARCH_ENCRYPTION_KEY")
            )
        if self.encryption_key_file is not None:
            try:
                lines = self.encryption_key_file.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as err:
                raise ValueError(
                    f"RESEARCH_ENCRYPTION_KEY_FILE cannot be read ({type(err).__name__})"
                ) from None
            texts = [line for line in lines if line.strip() and not line.startswith("#")]
            if not texts:
                raise ValueError("RESEARCH_ENCRYPTION_KEY_FILE holds no key")
            keys += [
                decode_key(text, f"line {n} of RESEARCH_ENCRYPTION_KEY_FILE")
                for n, text in enumerate(texts, 1)
            ]
        if self.encryption_previous_keys is not None:
            if not keys:
                raise ValueError(
                    "RESEARCH_ENCRYPTION_PREVIOUS_KEYS needs RESEARCH_ENCRYPTION_KEY or "
                    "RESEARCH_ENCRYPTION_KEY_FILE: a key to encrypt with"
                )
            texts = [t for t in self.encryption_previous_keys.get_secret_value().split(",")]
            keys += [
                decode_key(text, f"key {n} of RESEARCH_ENCRYPTION_PREVIOUS_KEYS")
                for n, text in enumerate((t for t in texts if t.strip()), 1)
            ]
        return keys

    def secrets(self) -> list[SecretStr | str | None]:
        """Every secret these settings hold, for `research_shared.redaction`."""
        found: list[SecretStr | str | None] = [
            self.s3_secret_access_key,
            self.s3_session_token,
            self.encryption_key,
        ]
        if self.encryption_previous_keys is not None:
            found += self.encryption_previous_keys.get_secret_value().split(",")
        found += [base64.b64encode(key).decode() for key in self.encryption_keys()]
        return found


class CodecServerSettings(BaseSettings):
    """The codec server: what the Temporal Web UI calls to show decrypted payloads."""

    model_config = _from_env("RESEARCH_")

    codec_auth_token: SecretStr | None = Field(
        default=None, description="Bearer token every request must present."
    )
    codec_cors_origins: str = Field(
        default="http://localhost:8233,http://127.0.0.1:8233",
        description="Comma-separated origins of the Web UI allowed to call the server.",
    )

    @field_validator("codec_auth_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < 16:
            raise ValueError("should be at least 16 characters")
        return value

    def origins(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.codec_cors_origins.split(",") if o.strip()]


# Every settings class a process loads from its environment, by the name pydantic gives its
# validation errors.
_SETTINGS_CLASSES: dict[str, type[BaseSettings]] = {
    cls.__name__: cls
    for cls in (
        TemporalSettings,
        QueueSettings,
        WorkerSettings,
        SearchSettings,
        LlmSettings,
        ApiSettings,
        PayloadSettings,
        CodecServerSettings,
    )
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
        # Inside a JSON value, where: RESEARCH_MODEL_PRICES["gpt-4.1"]["input_per_million"].
        where = "".join(f"[{json.dumps(part)}]" for part in error["loc"][1:])
        # A missing key has no value of its own; its input is the object that lacks it.
        hidden = _is_secret(field) or error["type"] == "missing"
        shown = "" if hidden else f"={_shown(error['input'])}"
        problems.append(f"{variable}{where}{shown}: {rule}")
    return "invalid settings: " + "; ".join(problems)
