"""How a process stores and protects payloads, built once from its settings when it starts.

`open_payloads(PayloadSettings())` gives the store (or none), the keyring (or none), the data
converter that uses both, and the store's records for the services' own documents. Every
client and worker is built with `Payloads.converter`, so they all read what the others
wrote. Nothing connects until the store is first used.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.converter import DataConverter

from research_shared.converter import data_converter
from research_shared.encryption import Keyring
from research_shared.redaction import register_secret
from research_shared.settings import PayloadSettings
from research_shared.store import ObjectStore, Records, open_store


@dataclass
class Payloads:
    """The store, the keyring and the converter of one process."""

    settings: PayloadSettings
    store: ObjectStore | None
    keyring: Keyring | None
    converter: DataConverter

    @property
    def records(self) -> Records | None:
        """The services' records in the store, sealed with the keyring; None without a store."""
        return None if self.store is None else Records(self.store, self.keyring)

    def describe(self) -> dict[str, str]:
        """What a log line may say about the setup: no key, no credential."""
        return {
            "payload_store": self.store.url if self.store is not None else "off",
            "encryption": f"key {self.keyring.current_id}" if self.keyring else "off",
        }

    async def aclose(self) -> None:
        """Close the store's connections."""
        if self.store is not None:
            await self.store.aclose()


def open_payloads(settings: PayloadSettings | None = None) -> Payloads:
    """The payload setup `settings` ask for (loaded from the environment when not given).

    Keys and credentials are registered for redaction first, so no message quotes them.
    """
    settings = settings if settings is not None else PayloadSettings()
    for secret in settings.secrets():
        register_secret(secret)
    keys = settings.encryption_keys()
    keyring = Keyring(keys) if keys else None
    store = open_store(settings)
    converter = data_converter(store, keyring, settings.payload_store_threshold)
    return Payloads(settings=settings, store=store, keyring=keyring, converter=converter)
