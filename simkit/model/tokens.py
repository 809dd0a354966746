"""Signed identity tokens: the user comes from a credential, not from the client's say-so.

The post-mortem's server believed whatever user id a client sent, so anyone who knew an id
could take its registry entry (and, under kick-old, kick its owner off). A token issued by
the server and signed with a secret it keeps (HMAC-SHA256, stdlib only) closes that hole:
the handshake carries the token, the server reads the user out of it. Pure logic: ``now``
is passed in, so tests can expire tokens without waiting.

Format: ``base64url(user) "." expiry "." base64url(hmac(secret, user "." expiry))``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from simkit.model.errors import SimkitError


class TokenError(SimkitError):
    """A token was refused; the message says why (peer misbehaviour, not an API misuse)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Issues and verifies tokens with one secret (at least 16 bytes, e.g. from
    ``secrets.token_bytes(32)``)."""

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) < 16:
            raise ValueError("the token secret must be at least 16 bytes")
        self._secret = secret

    def _mac(self, payload: bytes) -> str:
        return _b64(hmac.new(self._secret, payload, hashlib.sha256).digest())

    def issue(self, user: str, now: float, ttl: float = 3600.0) -> str:
        expiry = int(now + ttl)
        payload = f"{_b64(user.encode())}.{expiry}"
        return f"{payload}.{self._mac(payload.encode())}"

    def verify(self, token: str, now: float) -> str:
        """The user the token was issued to; raises TokenError naming what is wrong."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("malformed token (expected three dot-separated parts)")
        user_part, expiry_part, mac = parts
        if not hmac.compare_digest(mac, self._mac(f"{user_part}.{expiry_part}".encode())):
            raise TokenError("token signature does not match")
        if not expiry_part.isdigit() or int(expiry_part) < now:
            raise TokenError("token expired")
        try:
            return _unb64(user_part).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise TokenError("malformed token (user part)") from None
