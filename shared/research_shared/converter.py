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

Untyped JSON is read by the standard library, which accepts everything JSON allows, lone
surrogate escapes (`"\\ud800"`) included; the request models then refuse such text with a
message that says what is wrong. Typed payloads (activity inputs and results, the report)
decode exactly as in the SDK: a result that cannot be decoded is a bug to fix and deploy,
and the workflow task is retried until then.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter, DefaultFailureConverter, PayloadConverter
from temporalio.exceptions import ApplicationError

from research_shared import errors
from research_shared.redaction import redact

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


class RedactingFailureConverter(DefaultFailureConverter):
    """The SDK's failure encoding, with every message and stack trace in the chain redacted."""

    def to_failure(
        self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure
    ) -> None:
        super().to_failure(exception, payload_converter, failure)
        current: Failure | None = failure
        while current is not None:
            current.message = redact(current.message)
            current.stack_trace = redact(current.stack_trace)
            current = current.cause if current.HasField("cause") else None


DATA_CONVERTER: DataConverter = DataConverter(
    payload_converter_class=ContractPayloadConverter,
    failure_converter_class=RedactingFailureConverter,
)
