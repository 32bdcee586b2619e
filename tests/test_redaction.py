"""The one redactor (`research_shared.redaction`) and the paths that use it: log lines in both
chains and formats, and the provider error mapping.

The keys here are random alphanumeric strings of 32 characters, chosen per test run: they
look like nothing, so only the registry of configured secrets can remove them.
"""

from __future__ import annotations

import json
import logging
import secrets
import string
import sys
from collections.abc import Iterator

import pytest
import structlog
from pydantic import SecretStr
from temporalio.api.failure.v1 import Failure

from research_cli.embedded import free_port
from research_shared import errors
from research_shared.converter import DATA_CONVERTER
from research_shared.logs import configure_logging
from research_shared.provider_errors import from_http_status, unavailable
from research_shared.redaction import MASK, MIN_SECRET_CHARS, redact, register_secret
from research_shared.settings import TemporalSettings
from research_shared.temporal_client import connect


def random_key(length: int = 32) -> str:
    """A key with no recognisable shape (no prefix, no separator)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


# -- the redactor ----------------------------------------------------------------------------


def test_a_registered_key_is_removed_wherever_it_appears() -> None:
    key = random_key()
    text = f"rejected {key}; header was Authorization: {key}, url ?k={key}&x=1"
    assert redact(text) == text, "the key looks like nothing; only registering removes it"
    register_secret(SecretStr(key))
    redacted = redact(text)
    assert key not in redacted
    assert redacted == f"rejected {MASK}; header was Authorization: {MASK}, url ?k={MASK}&x=1"


def test_registering_accepts_plain_strings_and_ignores_nothing_to_register() -> None:
    key = random_key()
    register_secret(key)
    register_secret(None)
    register_secret("   ")
    register_secret(key)
    assert redact(f"<{key}>") == f"<{MASK}>"


def test_too_short_values_are_not_registered() -> None:
    short = "local"
    assert len(short) < MIN_SECRET_CHARS
    register_secret(short)
    register_secret(SecretStr("none"))
    text = "a local server answered none"
    assert redact(text) == text


def test_a_key_that_contains_another_is_removed_whole() -> None:
    inner = random_key(12)
    outer = f"{inner}{random_key(20)}"
    register_secret(inner)
    register_secret(outer)
    assert redact(f"key={outer}.") == f"key={MASK}."
    assert redact(f"{inner} and {outer}") == f"{MASK} and {MASK}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("key sk-proj-Ab3dEf6hIj9kLm", f"key {MASK}", id="openai-project-key"),
        pytest.param("sk-Ab3dEf6hIj9kLmNo", MASK, id="openai-key"),
        pytest.param("rk-live-0a1b2c3d4e", MASK, id="restricted-key"),
        pytest.param("tvly-dev-0a1b2c3d4e5f", MASK, id="tavily-key"),
        pytest.param(
            "Incorrect API key: sk-tes*****-key.", f"Incorrect API key: {MASK}.", id="masked"
        ),
        pytest.param(
            "Authorization: Bearer 0a1b2c3d4e5f6a7b", f"Authorization: Bearer {MASK}", id="bearer"
        ),
        pytest.param("bearer abc.def-ghi_jkl==", f"bearer {MASK}", id="bearer-lowercase"),
        pytest.param(
            "token eyJhbGciOi.eyJzdWIiOiIx.c2lnbmF0dXJl end",
            f"token {MASK} end",
            id="jwt",
        ),
        pytest.param("GET /x?api_key=abc123&q=1", f"GET /x?api_key={MASK}&q=1", id="query-string"),
        pytest.param('{"password": "hunter2"}', f'{{"password": "{MASK}"}}', id="json-pair"),
    ],
)
def test_key_shaped_text_is_removed(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "a risk-free task-queue on a desk-top",
        "sk-learn and pk-1",
        "Bearer",
        "max_tokens=100, input_tokens: 20",
        "Invalid search_depth. Must be one of: basic, advanced.",
        "https://example.org/eyJ-not-a-token",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


async def test_connecting_to_temporal_registers_its_api_key() -> None:
    key = random_key()
    # A port nothing listens on: the connection fails, after the key is registered.
    settings = TemporalSettings(address=f"127.0.0.1:{free_port()}", api_key=SecretStr(key))
    with pytest.raises(RuntimeError):
        await connect(settings)
    assert redact(f"api key {key}") == f"api key {MASK}"


# -- provider errors -------------------------------------------------------------------------


def test_provider_errors_redact_before_they_shorten() -> None:
    key = random_key()
    register_secret(key)
    # The key straddles the cut at 300 characters: cutting first would keep half of it.
    detail = "x" * 290 + key + " tail"
    error = from_http_status("Tavily", 401, detail)
    assert error.type == errors.PROVIDER_AUTH
    assert key not in error.message
    assert key[:10] not in error.message
    assert MASK in error.message
    down = unavailable("Tavily", ConnectionError(f"proxy said {key}"))
    assert key not in down.message
    assert "ConnectionError: proxy said ***" in down.message


# -- log lines ---------------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`configure_logging` changes process-wide state; put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


class Opaque:
    """A value JSON cannot serialise, whose repr carries a key."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __repr__(self) -> str:
        return f"Opaque({self.key})"


def log_everything(key: str) -> None:
    """The ways a key could reach a log line: values, nested values, objects, tracebacks."""
    log = structlog.get_logger("test")
    log.info(f"calling with {key}", url=f"https://x.test/?k={key}", nested={"a": [key]})
    log.info("an object", value=Opaque(key), api_key="short")
    try:
        raise RuntimeError(f"the server echoed {key}")
    except RuntimeError:
        log.exception("structlog saw a failure")
        logging.getLogger("stdlib").warning("stdlib saw %s", key, exc_info=True)
    logging.getLogger("stdlib").warning("stdlib object %r", Opaque(key))


def test_json_lines_carry_no_key_and_are_json(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    key = random_key()
    register_secret(key)
    configure_logging(fmt="json", service="redaction-test")
    log_everything(key)
    sys.stderr.flush()
    err = capsys.readouterr().err

    assert key not in err
    records = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert len(records) == 5
    first, obj, structlog_failure, stdlib_failure, stdlib_object = records
    assert first["event"] == f"calling with {MASK}"
    assert first["url"] == f"https://x.test/?k={MASK}"
    assert first["nested"] == {"a": [MASK]}
    assert obj["value"] == f"Opaque({MASK})"
    assert obj["api_key"] == MASK
    for failure in (structlog_failure, stdlib_failure):
        assert failure["exception"].startswith("Traceback (most recent call last)")
        assert failure["exception"].endswith(f"RuntimeError: the server echoed {MASK}")
    assert stdlib_failure["event"] == f"stdlib saw {MASK}"
    assert stdlib_object["event"] == f"stdlib object Opaque({MASK})"
    assert all(r["service"] == "redaction-test" for r in records)


def test_console_lines_carry_no_key(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    key = random_key()
    register_secret(key)
    configure_logging(fmt="console")
    log_everything(key)
    sys.stderr.flush()
    err = capsys.readouterr().err

    assert key not in err
    assert f"calling with {MASK}" in err
    assert err.count(f"RuntimeError: the server echoed {MASK}") == 2
    assert f"stdlib object Opaque({MASK})" in err


def test_failures_are_redacted_however_they_were_raised() -> None:
    """Whatever an activity or workflow raises, chained causes and stack traces included,
    passes the redactor when the data converter encodes it for the history."""
    key = random_key()
    register_secret(key)
    try:
        try:
            raise ConnectionError(f"the server said: bad key {key}")
        except ConnectionError as cause:
            raise RuntimeError(f"call failed with {key}") from cause
    except RuntimeError as err:
        raised = err
    failure = Failure()
    DATA_CONVERTER.failure_converter.to_failure(raised, DATA_CONVERTER.payload_converter, failure)
    encoded = failure.SerializeToString()
    assert key.encode() not in encoded
    assert failure.message == f"call failed with {MASK}"
    assert failure.cause.message == f"the server said: bad key {MASK}"
