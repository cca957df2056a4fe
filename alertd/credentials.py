"""Device and staff secrets: generated at random, stored only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import re
import secrets

# 32 random bytes carry 256 bits: a fast hash is enough, brute force is hopeless,
# and lookup by digest keeps authentication to one indexed query.
_SECRET_BYTES = 32
# RFC 6750 b64token. Anything else (spaces, bytes beyond ASCII, which aiohttp hands over as
# surrogate escapes that cannot even be hashed) is not a credential.
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def new_secret(prefix: str = "") -> str:
    """A fresh random bearer secret."""
    return prefix + secrets.token_urlsafe(_SECRET_BYTES)


def digest(secret: str) -> bytes:
    """The stored form of a secret."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer ...` header, or None (missing or malformed)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not _TOKEN_RE.fullmatch(token):
        return None
    return token
