"""The service's keys: one root secret, one derived key per purpose.

The root is `SIGNING_SECRET` (or `DATA_DIR/signing.key`, generated on first start). No
purpose uses it directly: HKDF-SHA256 (RFC 5869, from the `cryptography` package) derives a
key per purpose under a distinct label, so holding one derived key tells nothing about the
root or any other key:

| key | signs or seals | label |
|---|---|---|
| `links` | signed download links (`?expires=…&sig=…`) | `autoenhance-batch-downloader:links:v1` |
| `sessions` | administrator session cookies and their CSRF tokens | `…:sessions:v1` |
| `callbacks` | root of per-job callback keys, if `CALLBACK_SECRET` is unset | `…:callbacks:v1` |
| `sealing` | stored bring-your-own keys of pending jobs (Fernet) | `autoenhance-jobs:byok` |

Callbacks are signed per job, with a key derived from `CALLBACK_SECRET` or, when that is unset,
from the derived callback root (`python -m app.core.keys callback-secret` prints it); see
`app.jobs.callbacks`. A receiver holds its jobs' keys only: it can check their callbacks and
nothing else — no other job's callback, link, session or sealed key.

Compatibility and rotation. The sealing label is the one sealed keys were always made with,
so jobs pending across an upgrade still open their keys. Links and sessions made before the
derivation was introduced were keyed with the root itself and are refused: accepting them
would keep accepting what anyone holding the root forges, and both are short-lived (a link
`DOWNLOAD_LINK_TTL`, a session `ADMIN_SESSION_TTL`; ask again, sign in again). Receivers that
checked callbacks with `SIGNING_SECRET` (the earlier default) hold the root: rotate it by
setting a new `SIGNING_SECRET` on every node, which ends every link and session and fails
pending bring-your-own-key jobs with "key no longer available; resubmit", and hand receivers
`CALLBACK_SECRET` or the printed callback key.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.core.config import Settings
from app.core.files import private_dir
from app.core.security import load_or_create_secret

_LABEL = "autoenhance-batch-downloader:{}:v1"
# Kept from the first release of sealed keys: a new label would strand pending jobs' keys.
SEALING_LABEL = b"autoenhance-jobs:byok"
KEY_BYTES = 32


def derive(root: bytes, label: bytes) -> bytes:
    """A 32-byte key for the purpose `label`, derived from `root` (HKDF-SHA256, no salt)."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=label).derive(root)


@dataclass(frozen=True, slots=True)
class ServiceKeys:
    """One key per purpose (see the module docstring)."""

    links: bytes = field(repr=False)
    sessions: bytes = field(repr=False)
    callbacks: bytes = field(repr=False)
    sealing: bytes = field(repr=False)

    @classmethod
    def derive(cls, root: bytes, *, callback_secret: bytes | None = None) -> ServiceKeys:
        """The keys of the root secret; `callback_secret` (CALLBACK_SECRET) is used as given.

        The derived callback key is handed to receivers as text, so it is the hex form of the
        derived bytes, used like a configured `CALLBACK_SECRET` would be.
        """
        callbacks = callback_secret or derive(root, _label("callbacks")).hex().encode()
        return cls(
            links=derive(root, _label("links")),
            sessions=derive(root, _label("sessions")),
            callbacks=callbacks,
            sealing=derive(root, SEALING_LABEL),
        )


def _label(purpose: str) -> bytes:
    return _LABEL.format(purpose).encode()


def root_secret(settings: Settings) -> bytes:
    """`SIGNING_SECRET`, or the secret generated into `DATA_DIR/signing.key`."""
    if settings.signing_secret is not None:
        return settings.signing_secret.get_secret_value().encode()
    return load_or_create_secret(private_dir(settings.data_dir) / "signing.key")


def service_keys(settings: Settings) -> ServiceKeys:
    """The keys of this service's configuration."""
    configured = settings.callback_secret
    return ServiceKeys.derive(
        root_secret(settings),
        callback_secret=configured.get_secret_value().encode() if configured else None,
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m app.core.keys callback-secret`: the key callback receivers check with."""
    parser = argparse.ArgumentParser(prog="python -m app.core.keys", description=main.__doc__)
    parser.add_argument("key", choices=["callback-secret"])
    parser.parse_args(argv)
    sys.stdout.write(service_keys(Settings()).callbacks.decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
