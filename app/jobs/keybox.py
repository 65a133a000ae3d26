"""Keeps a caller's own Autoenhance key encrypted while its job is stored.

A job made with a bring-your-own key must fetch images with that key, possibly in another
process (a second uvicorn worker, an arq worker on another machine) or after a restart. The key
is therefore stored with the job, but only encrypted with Fernet (AES-128-CBC + HMAC-SHA256,
from the well-kept `cryptography` package) under the sealing key, derived by HKDF from the
service's signing secret for this purpose alone (`app.core.keys`). Every node that shares the
signing secret can run the job; anyone reading SQLite or Redis sees ciphertext. The sealed key
is erased when the job ends. If the secret changed in between, opening fails and the job fails
with "key no longer available; resubmit".
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken


class KeyUnavailable(Exception):
    """The sealed key cannot be opened (the signing secret changed, or it was tampered with)."""


class KeyBox:
    """Seal and open short secrets with the 32-byte sealing key (`ServiceKeys.sealing`)."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def open(self, token: str) -> str:
        """The sealed text.

        Raises:
            KeyUnavailable: the token was sealed under another secret or altered.
        """
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, ValueError) as exc:
            raise KeyUnavailable("the sealed key cannot be opened") from exc
