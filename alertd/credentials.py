"""Device and staff secrets: generated at random, stored only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import secrets

# 32 random bytes carry 256 bits: a fast hash is enough, brute force is hopeless,
# and lookup by digest keeps authentication to one indexed query.
_SECRET_BYTES = 32


def new_secret(prefix: str = "") -> str:
    """A fresh random bearer secret."""
    return prefix + secrets.token_urlsafe(_SECRET_BYTES)


def digest(secret: str) -> bytes:
    """The stored form of a secret."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer ...` header, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
