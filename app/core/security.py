"""Credentials, constant-time checks and signed links.

A `Credential` says which Autoenhance key a request spends and who owns what it creates:
the operator (the service's own key) or a caller who brought their own key, known only by a
hash of it. Caches and jobs are keyed by `Credential.owner`, never by the key itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from app.core.config import Settings

OPERATOR = "operator"
# Owners of data made with a caller's own key: this prefix and a fingerprint of the key.
OWN_KEY_PREFIX = "byok:"
# Key sent to the embedded sandbox on the operator's behalf (it accepts any non-empty key).
SANDBOX_OPERATOR_KEY = "sandbox-operator-key"

# What `Signer.sign` writes: a Unix time (12 digits reach the year 33658) and a hex SHA-256.
_EXPIRES = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Credential:
    """The upstream key a request uses and the owner its cached data is filed under."""

    api_key: str | None = field(repr=False)
    owner: str

    @classmethod
    def own_key(cls, api_key: str) -> Credential:
        return cls(api_key=api_key, owner=own_key_owner(api_key))

    @property
    def is_own_key(self) -> bool:
        """True when the caller brought this key (it is not the operator's)."""
        return self.owner.startswith(OWN_KEY_PREFIX)


def operator_credential(settings: Settings) -> Credential:
    """The operator's credential: `AUTOENHANCE_API_KEY`, or in sandbox mode a placeholder the
    embedded emulator accepts."""
    key = settings.autoenhance_api_key
    return Credential(
        api_key=key.get_secret_value() if key is not None else SANDBOX_OPERATOR_KEY,
        owner=OPERATOR,
    )


def own_key_owner(api_key: str) -> str:
    """The owner that data made with a caller's own key is filed under."""
    return OWN_KEY_PREFIX + key_fingerprint(api_key)


def key_fingerprint(api_key: str) -> str:
    """A one-way, non-reversible identifier of a key (safe to store and log)."""
    return hashlib.sha256(b"autoenhance-key:" + api_key.encode()).hexdigest()[:32]


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented secret with the configured one."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def load_or_create_secret(path: Path) -> bytes:
    """Read the local signing secret, creating it (mode 0600) on first use.

    Several workers may start at once: the file is created exclusively, and a loser of that
    race reads what the winner wrote.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            data = path.read_bytes().strip()
            if data:
                return base64.urlsafe_b64decode(data)
            time.sleep(0.02)
        raise RuntimeError(f"signing secret file {path.name} is empty") from None
    secret = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.urlsafe_b64encode(secret))
    return secret


@dataclass(frozen=True, slots=True)
class SignedLink:
    """A signed `path?query` and the Unix time it stops being valid."""

    url: str
    expires: int


class Signer:
    """HMAC-SHA256 signatures over a path, its query and an expiry time.

    A signed link is `path?<query>&expires=<unix>&sig=<hex>`; `verify` recomputes the signature
    over the same canonical form (query sorted, `sig` left out) and compares in constant time.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _digest(self, path: str, params: dict[str, str]) -> str:
        canonical = path + "?" + urlencode(sorted(params.items()))
        return hmac.new(self._secret, canonical.encode(), hashlib.sha256).hexdigest()

    def sign(
        self, path: str, params: dict[str, str], *, ttl: int, now: float | None = None
    ) -> SignedLink:
        """`path?query` carrying `expires` (`ttl` seconds from `now`) and `sig`."""
        return self.sign_until(path, params, int((now if now is not None else time.time()) + ttl))

    def sign_until(self, path: str, params: dict[str, str], expires: int) -> SignedLink:
        """`path?query` carrying `expires` (a Unix time) and `sig`: a link derived from another
        one (the same download, pinned to a version) keeps the expiry of the link it came from."""
        signed = {**params, "expires": str(expires)}
        signed["sig"] = self._digest(path, signed)
        return SignedLink(url=path + "?" + urlencode(sorted(signed.items())), expires=expires)

    def verify(self, path: str, params: dict[str, str], *, now: float | None = None) -> bool:
        """True when `params` carry a valid, unexpired signature for `path`.

        Anything that is not what `sign` writes — an expiry that is not 1 to 12 ASCII digits
        (`str.isdigit` also accepts "²", and `int` refuses strings of over 4,300 digits), a
        signature that is not 64 lowercase hex digits — is simply invalid, never an error.
        """
        sig = params.get("sig", "")
        expires = params.get("expires", "")
        if not _SIGNATURE.fullmatch(sig) or not _EXPIRES.fullmatch(expires):
            return False
        if int(expires) < (now if now is not None else time.time()):
            return False
        unsigned = {k: v for k, v in params.items() if k != "sig"}
        return hmac.compare_digest(sig.encode(), self._digest(path, unsigned).encode())

    def mac(self, message: bytes) -> str:
        """A hex HMAC-SHA256 of `message` (for callback signatures and session cookies)."""
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()
