"""Reading the references to stored payloads that a history holds, in every form the SDK
writes them.

The SDK (1.35) writes a reference as a plain `json/protobuf` `ExternalStorageReference`
payload, outside the codec, and marks every reference with `external_payloads` (the stored
size). A flag private to the SDK (`_ENCODE_STORAGE_REFERENCES`) decides that; once a release
turns it on, references are encoded by the codec (encrypted, when a key is set) and carry the
metadata marker `__temporal_external_storage_reference`. Older SDKs wrote a JSON reference
of their own encoding. `deep-research gc` must know every object a history points at, so a
reference it cannot read is an error, never a payload without references: a collector that
skipped it would delete what a run still needs.
"""

from __future__ import annotations

import json

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.api.sdk.v1.external_storage_pb2 import ExternalStorageReference
from temporalio.converter import PayloadCodec

from research_shared.store._objects import StoreError

REFERENCE_MARKER = "__temporal_external_storage_reference"
"""The metadata key the SDK sets on references it encoded with the codec."""
_REFERENCE_TYPE = ExternalStorageReference.DESCRIPTOR.full_name.encode()
_LEGACY_ENCODING = b"json/external-storage-reference"


class UnreadableReference(StoreError):
    """A payload that points into external storage, in a form that cannot be read here."""


def is_reference(payload: Payload) -> bool:
    """Whether `payload` stands for a stored payload, whatever its form."""
    return bool(
        payload.external_payloads
        or payload.metadata.get(REFERENCE_MARKER) == b"true"
        or _plain_reference(payload)
        or payload.metadata.get("encoding") == _LEGACY_ENCODING
    )


async def read_reference(
    payload: Payload, codec: PayloadCodec | None
) -> ExternalStorageReference | None:
    """The reference `payload` holds, or None if it is an ordinary payload.

    A reference encoded by the codec is decoded with `codec` first. Raises
    `UnreadableReference` for a reference that cannot be read: encoded and no codec (or the
    wrong key) to open it, or in a form this code does not know.
    """
    if not is_reference(payload):
        return None
    if payload.metadata.get(REFERENCE_MARKER) == b"true":
        payload = await _decoded(payload, codec)
    try:
        if _plain_reference(payload):
            return json_format.Parse(payload.data, ExternalStorageReference())
        if payload.metadata.get("encoding") == _LEGACY_ENCODING:
            legacy = json.loads(payload.data)
            return ExternalStorageReference(
                driver_name=legacy["driver_name"],
                claim_data=legacy["driver_claim"]["claim_data"],
            )
    except (json_format.ParseError, ValueError, KeyError, TypeError) as err:
        raise UnreadableReference(f"a reference to a stored payload is malformed: {err}") from None
    encoding = payload.metadata.get("encoding", b"").decode("utf-8", "replace") or "none"
    raise UnreadableReference(
        f"a payload marked as stored aside has an encoding no reader here knows ({encoding})"
    )


async def _decoded(payload: Payload, codec: PayloadCodec | None) -> Payload:
    """The reference inside a codec-encoded one, as the SDK reads it back."""
    if codec is None:
        raise UnreadableReference("a reference to a stored payload is encoded, and no codec is set")
    encoded = Payload()
    encoded.CopyFrom(payload)
    del encoded.metadata[REFERENCE_MARKER]
    del encoded.external_payloads[:]
    try:
        [decoded] = await codec.decode([encoded])
    except Exception as err:  # any codec's own error: the reference cannot be read here
        raise UnreadableReference(
            f"a reference to a stored payload cannot be decoded: {err}"
        ) from None
    return decoded


def _plain_reference(payload: Payload) -> bool:
    return (
        payload.metadata.get("encoding") == b"json/protobuf"
        and payload.metadata.get("messageType") == _REFERENCE_TYPE
    )
