"""Encryption of access keys at rest (optional, Fernet).

An access key is a KS with edit rights on a customer's entry, valid for days, so a copied
database file or a backup must not hand those rights out. When `database.key_file` is set,
the store keeps only ciphertext; the key itself lives in a credentials file (e.g. a systemd
`LoadCredential`), never in the database or the config.

Stored values carry a prefix saying how they are stored, so a database written before
encryption was switched on still reads (plaintext rows are re-encrypted the next time they
are written), and a ciphertext read without a key fails loudly instead of being sent to
Kaltura as if it were a KS.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reach_vendor.common.config_base import ConfigError

if TYPE_CHECKING:
    # Imported where a key is loaded: a daemon without `database.key_file` never needs it.
    from cryptography.fernet import Fernet

PREFIX = "fernet:"


class SecretBoxError(Exception):
    """A stored secret cannot be read back (wrong or missing key)."""


class SecretBox:
    """Seals and opens stored secrets; without a key it passes plaintext through."""

    def __init__(self, fernet: Fernet | None = None) -> None:
        self._fernet = fernet

    @classmethod
    def from_key_file(cls, path: Path | None) -> SecretBox:
        if path is None:
            return cls()
        from cryptography.fernet import Fernet

        try:
            key = path.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"database.key_file: cannot read {path}: {exc.strerror}") from None
        try:
            return cls(Fernet(key))
        except (ValueError, TypeError):
            raise ConfigError(
                f"database.key_file: {path} does not hold a Fernet key "
                "(32 url-safe base64-encoded bytes, e.g. from Fernet.generate_key())"
            ) from None

    @property
    def encrypting(self) -> bool:
        return self._fernet is not None

    def seal(self, plaintext: str) -> str:
        if self._fernet is None:
            return plaintext
        return PREFIX + self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def open(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored
        if self._fernet is None:
            raise SecretBoxError(
                "the database holds encrypted access keys but database.key_file is not set"
            )
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode("ascii")).decode()
        except InvalidToken:
            raise SecretBoxError(
                "an access key in the database cannot be decrypted with database.key_file "
                "(wrong key file?)"
            ) from None
