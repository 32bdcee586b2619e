"""Encryption at rest: AES-256-GCM over every payload, and over the records of the store.

A `Keyring` holds the keys of `PayloadSettings`: the first encrypts, every one decrypts, so
a key is rotated by putting the new one first and keeping the old ones until nothing
written with them is still needed. Each key is known by an id derived from it (a hash, not
the key), written beside every ciphertext, so a reader picks the right key at once and a
reader without it says which key is missing.

`EncryptionCodec` is the Temporal payload codec: a payload becomes one `binary/encrypted`
payload whose data is the nonce and the ciphertext of the whole original payload (metadata
included, so not even its encoding shows). Payloads that are not encrypted pass through on
decode, which keeps histories written before encryption was turned on readable.

The cipher is `cryptography`'s AESGCM (PyCA, OpenSSL underneath): a 96-bit random nonce per
message, and the key id as associated data, so a ciphertext moved under another key id
fails to open instead of being read with the wrong key.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCRYPTED_ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
CIPHER_METADATA = "encryption-cipher"
CIPHER = b"AES-256-GCM"
_NONCE_BYTES = 12
# Records of the store (provider answers, cached searches, manifests) sealed with a key
# start with this line, then the key id; plain records are JSON and never start so.
_SEALED_MAGIC = b"deep-research-sealed/1\n"


class EncryptionError(Exception):
    """A payload or record cannot be decrypted: its key is not configured, or it was altered."""


def key_id(key: bytes) -> str:
    """The public name of a key: 16 hex digits of a hash of it, never the key itself."""
    return hashlib.sha256(b"deep-research key id\0" + key).hexdigest()[:16]


class Keyring:
    """The configured keys: `keys[0]` encrypts, all of them decrypt."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self._ciphers = {key_id(key): AESGCM(key) for key in keys}
        self.current_id = key_id(keys[0])

    def __repr__(self) -> str:
        return f"Keyring(current_id={self.current_id!r}, keys={len(self._ciphers)})"

    @property
    def key_ids(self) -> list[str]:
        """Ids of every key that decrypts, the current one first."""
        return list(self._ciphers)

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        """(key id, nonce + ciphertext) under the current key."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self.current_id].encrypt(nonce, plaintext, self.current_id.encode())
        return self.current_id, nonce + sealed

    def decrypt(self, kid: str, data: bytes) -> bytes:
        """The plaintext of `data`, written under the key `kid`."""
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise EncryptionError(
                f"encrypted with key {kid}, which is not among the configured keys "
                f"({', '.join(self._ciphers)}): set RESEARCH_ENCRYPTION_KEY (or add the old "
                "key to RESEARCH_ENCRYPTION_PREVIOUS_KEYS)"
            )
        try:
            return cipher.decrypt(data[:_NONCE_BYTES], data[_NONCE_BYTES:], kid.encode())
        except InvalidTag:
            raise EncryptionError(
                f"the ciphertext under key {kid} does not authenticate: it was altered or cut short"
            ) from None

    def seal(self, plaintext: bytes) -> bytes:
        """A record of the store, encrypted: magic line, key id line, nonce + ciphertext."""
        kid, data = self.encrypt(plaintext)
        return _SEALED_MAGIC + kid.encode() + b"\n" + data


def is_sealed(data: bytes) -> bool:
    """Whether a record of the store was written encrypted."""
    return data.startswith(_SEALED_MAGIC)


def open_record(data: bytes, keyring: Keyring | None) -> bytes:
    """The plaintext of a record of the store, sealed or not."""
    if not is_sealed(data):
        return data
    kid, _, body = data[len(_SEALED_MAGIC) :].partition(b"\n")
    if keyring is None:
        raise EncryptionError(
            f"the record is encrypted with key {kid.decode(errors='replace')} and no key is "
            "configured: set RESEARCH_ENCRYPTION_KEY or RESEARCH_ENCRYPTION_KEY_FILE"
        )
    return keyring.decrypt(kid.decode(errors="replace"), body)


def seal_record(data: bytes, keyring: Keyring | None) -> bytes:
    """`data` as the store keeps it: sealed with the current key, or as it is without one."""
    return data if keyring is None else keyring.seal(data)


class EncryptionCodec(PayloadCodec):
    """Encrypts every payload with the current key; decrypts with whichever key wrote it.

    With no keyring it encrypts nothing, and refuses an encrypted payload with a message
    that says a key is needed (rather than the SDK's "unknown encoding").
    """

    def __init__(self, keyring: Keyring | None) -> None:
        self._keyring = keyring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if self._keyring is None:
            return list(payloads)
        return [self._encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        assert self._keyring is not None
        kid, data = self._keyring.encrypt(payload.SerializeToString())
        return Payload(
            metadata={
                "encoding": ENCRYPTED_ENCODING,
                KEY_ID_METADATA: kid.encode(),
                CIPHER_METADATA: CIPHER,
            },
            data=data,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """The original of an encrypted payload; any other payload unchanged."""
        if payload.metadata.get("encoding") != ENCRYPTED_ENCODING:
            return payload
        kid = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        if self._keyring is None:
            raise EncryptionError(
                f"the payload is encrypted with key {kid} and no key is configured: set "
                "RESEARCH_ENCRYPTION_KEY or RESEARCH_ENCRYPTION_KEY_FILE"
            )
        original = Payload()
        original.ParseFromString(self._keyring.decrypt(kid, payload.data))
        return original
