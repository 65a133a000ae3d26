"""Keeps a caller's own Autoenhance key encrypted while its job is stored.

A job made with a bring-your-own key must fetch images with that key, possibly in another
process (a second uvicorn worker, an arq worker on another machine) or after a restart. The key
is therefore stored with the job, but only encrypted with Fernet (AES-128-CBC + HMAC-SHA256,
from the well-kept `cryptography` package) under a key derived by HKDF from the service's
signing secret. Every node that shares the signing secret can run the job; anyone reading
SQLite or Redis sees ciphertext. The sealed key is erased when the job ends. If the secret
changed in between, opening fails and the job fails with "key no longer available; resubmit".
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class KeyUnavailable(Exception):
    """The sealed key cannot be opened (the signing secret changed, or it was tampered with)."""


class KeyBox:
    """Seal and open short secrets with a key derived from the signing secret."""

    def __init__(self, secret: bytes) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"autoenhance-jobs:byok"
        ).derive(secret)
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

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
