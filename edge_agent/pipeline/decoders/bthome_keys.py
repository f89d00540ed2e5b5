"""Encrypted BTHome v2: each device's bind key, and the counter that stops a replay.

The payload after the device-information byte (and the MAC, when included) is the ciphertext,
a 4-byte counter and a 4-byte message integrity code; AES-CCM with the device's 16-byte bind
key, nonce = MAC (6 bytes, as written) + UUID ``d2 fc`` + device-information byte + counter.
The keys come from a systemd credential or a 0600 file (``runtime.secrets.bthome_keys``), are
held here only, and are never logged or published.

A counter that does not increase is a replay and is refused, except a counter below
``COUNTER_RESET`` (the device restarted counting: a battery change), as the reference decoder
does. The very same packet again (another receiver heard it too) is a copy, not a replay: it
opens to the same objects without being decrypted twice. A wrong key, a replay or a short
payload is counted, never raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from edge_agent.pipeline.decoders.base import Malformed

KEY_BYTES = 16
"""A bind key is 128 bits."""
COUNTER_RESET = 100
"""A counter below this after a higher one is a device that restarted counting, not a replay."""
_UUID = b"\xd2\xfc"
_TAIL = 8  # counter (4) + MIC (4)


@dataclass(slots=True)
class BindKeyStats:
    """What happened to encrypted BTHome payloads (reported in ``health.decode.bthome``)."""

    decrypted: int = 0
    """Payloads opened with their device's key."""
    copies: int = 0
    """The latest packet again (heard by another receiver): not decrypted twice."""
    wrong_key: int = 0
    """Payloads whose integrity code failed: a wrong key (or a corrupted packet)."""
    replayed: int = 0
    """Payloads refused because their counter did not increase."""
    no_key: int = 0
    """Encrypted payloads from devices with no bind key configured."""
    downgrade: int = 0
    """Clear payloads refused from a device that has a bind key."""


class BindKeys:
    """Bind keys by device MAC (``AA:BB:CC:DD:EE:FF``), with each device's last counter."""

    __slots__ = ("_ciphers", "_latest", "stats")

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        for mac, key in keys.items():
            if len(key) != KEY_BYTES:
                raise ValueError(f"bind key for {mac[:8]}… has {len(key)} bytes, not 16")
        self._ciphers = {mac.upper(): AESCCM(key, tag_length=4) for mac, key in keys.items()}
        self._latest: dict[str, tuple[int, bytes, bytes]] = {}
        """Per device: the latest counter, its packet and what it opened to."""
        self.stats = BindKeyStats()

    def __len__(self) -> int:
        return len(self._ciphers)

    def __repr__(self) -> str:  # never the keys
        return f"BindKeys({len(self._ciphers)} devices)"

    def has(self, mac: str) -> bool:
        """Whether a key is known for ``mac``."""
        return mac.upper() in self._ciphers

    def open(self, mac: str, info: int, body: bytes) -> bytes | Malformed:
        """The clear objects of ``body`` (ciphertext, counter, MIC) from ``mac``."""
        mac = mac.upper()
        cipher = self._ciphers[mac]
        if len(body) < _TAIL + 1:
            return Malformed("bthome", "encrypted_length")
        counter_bytes = body[-8:-4]
        counter = int.from_bytes(counter_bytes, "little")
        latest = self._latest.get(mac)
        if latest is not None:
            last, packet, opened = latest
            if counter == last and body == packet:
                self.stats.copies += 1
                return opened
            if counter <= last and counter >= COUNTER_RESET:
                self.stats.replayed += 1
                return Malformed("bthome", "replayed")
        nonce = bytes.fromhex(mac.replace(":", "")) + _UUID + bytes([info]) + counter_bytes
        try:
            clear = cipher.decrypt(nonce, body[:-8] + body[-4:], None)
        except InvalidTag:
            self.stats.wrong_key += 1
            return Malformed("bthome", "wrong_key")
        self._latest[mac] = (counter, body, clear)
        self.stats.decrypted += 1
        return clear


def seal(key: bytes, mac: str, info: int, clear: bytes, counter: int) -> bytes:
    """The encrypted body for ``clear`` objects (what a device sends after its information
    byte): the simulator's and the tests' encoder, the inverse of ``BindKeys.open``."""
    counter_bytes = counter.to_bytes(4, "little")
    nonce = bytes.fromhex(mac.replace(":", "")) + _UUID + bytes([info]) + counter_bytes
    sealed = AESCCM(key, tag_length=4).encrypt(nonce, clear, None)
    return sealed[:-4] + counter_bytes + sealed[-4:]
