"""The one data converter every client and worker uses.

It is the SDK's pydantic converter with one change, at the door. The workflow input and the
update and signal payloads are declared `Any` and validated by the workflow itself, so that a
caller in any language gets a one-line `InvalidResearchRequest` naming the bad field. Those
payloads are decoded here without a target type; a payload that cannot be decoded at all
(not JSON, an encoding no converter knows) would otherwise make the SDK fail the workflow
task on every attempt, leaving the run RUNNING forever. Here it becomes a non-retryable
`InvalidResearchRequest` instead: the run fails at once, an update is refused.

Failures are encoded by the SDK's converter, then passed through the one redactor, message,
stack trace and causes alike: whatever an activity or the workflow raises, from our code or a
library's, no configured secret and nothing shaped like a key reaches the history.

`data_converter` adds what the settings of a process ask for, at its start: the payload store
(the SDK's external storage, with our `StoreDriver`: payloads at least the threshold large go
aside and the history holds a reference) and the encryption codec. With a key, failure
messages and stack traces are moved into an encrypted attribute as well (the SDK's
`encode_common_attributes`), so a failure that quotes a query does not show it.
`DATA_CONVERTER` is the converter with neither: what reads a history without a store or
a key (replay of committed histories, unit tests of the payload converter).

Untyped JSON is read by the standard library, which accepts everything JSON allows, lone
surrogate escapes (`"\\ud800"`) included; the request models then refuse such text with a
message that says what is wrong. Typed payloads (activity inputs and results, the report)
decode exactly as in the SDK: a result that cannot be decoded is a bug to fix and deploy,
and the workflow task is retried until then.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverter,
    ExternalStorage,
    PayloadConverter,
)
from temporalio.exceptions import ApplicationError

from research_shared import errors
from research_shared.encryption import EncryptionCodec, Keyring
from research_shared.redaction import redact
from research_shared.settings import DEFAULT_PAYLOAD_THRESHOLD_BYTES
from research_shared.store import ObjectStore, StoreDriver

_JSON = b"json/plain"


class ContractPayloadConverter(PydanticPayloadConverter):
    """Pydantic payloads, with untyped payloads that cannot be decoded refused as bad input."""

    def from_payloads(
        self, payloads: Sequence[Payload], type_hints: list[type] | None = None
    ) -> list[Any]:
        hints: list[Any] = list(type_hints or [])
        hints += [None] * (len(payloads) - len(hints))
        return [self._from_payload(p, h) for p, h in zip(payloads, hints, strict=False)]

    def _from_payload(self, payload: Payload, hint: Any) -> Any:
        if hint is not None and hint is not Any:
            return super().from_payloads([payload], [hint])[0]
        encoding = payload.metadata.get("encoding", b"")
        try:
            if encoding == _JSON:
                return json.loads(payload.data)
            return super().from_payloads([payload])[0]
        except (ValueError, KeyError, RuntimeError, TypeError) as err:
            reason = (
                f"it is not JSON ({err})"
                if encoding == _JSON
                else f"its encoding {encoding.decode('utf-8', 'backslashreplace')!r} is not "
                "supported; send JSON (json/plain)"
            )
            raise ApplicationError(
                f"invalid research request: the input cannot be decoded: {reason}",
                type=errors.INVALID_REQUEST,
                non_retryable=True,
            ) from None


def _chain(failure: Failure) -> Iterator[Failure]:
    """`failure` and each of its causes, outermost first."""
    current: Failure | None = failure
    while current is not None:
        yield current
        current = current.cause if current.HasField("cause") else None


class RedactingFailureConverter(DefaultFailureConverter):
    """The SDK's failure encoding, with every message and stack trace in the chain redacted."""

    def to_failure(
        self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure
    ) -> None:
        super().to_failure(exception, payload_converter, failure)
        for current in _chain(failure):
            current.message = redact(current.message)
            current.stack_trace = redact(current.stack_trace)


class EncryptedFailureConverter(RedactingFailureConverter):
    """Redacted failures whose messages and stack traces travel in an encoded attribute.

    The codec then encrypts that attribute with the payloads; the history shows only
    "Encoded failure" and the failure's type. Readers with the key see the message again.
    """

    def to_failure(
        self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure
    ) -> None:
        super().to_failure(exception, payload_converter, failure)
        for current in _chain(failure):
            if not current.HasField("encoded_attributes"):
                current.encoded_attributes.CopyFrom(
                    payload_converter.to_payloads(
                        [{"message": current.message, "stack_trace": current.stack_trace}]
                    )[0]
                )
                current.message = "Encoded failure"
                current.stack_trace = ""


def data_converter(
    store: ObjectStore | None = None,
    keyring: Keyring | None = None,
    threshold: int = DEFAULT_PAYLOAD_THRESHOLD_BYTES,
) -> DataConverter:
    """The project's converter, with payloads of `threshold` bytes or more stored aside in
    `store` and every payload encrypted with `keyring` (each only when given).

    The codec is there even without a keyring: it then encrypts nothing and turns an
    encrypted payload into an error that says a key is needed. Use
    `research_shared.payloads.open_payloads` to build one from a process's settings.
    """
    return DataConverter(
        payload_converter_class=ContractPayloadConverter,
        failure_converter_class=(
            EncryptedFailureConverter if keyring is not None else RedactingFailureConverter
        ),
        payload_codec=EncryptionCodec(keyring),
        external_storage=(
            ExternalStorage(drivers=[StoreDriver(store)], payload_size_threshold=threshold)
            if store is not None
            else None
        ),
    )


DATA_CONVERTER: DataConverter = data_converter()
