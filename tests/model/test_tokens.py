"""Signed user tokens (simkit.model.tokens): pure, so they are checked here, with the fast
tests, rather than beside the live servers that use them."""

import pytest

from simkit.model.tokens import TokenError, TokenSigner


def test_token_signer_rules() -> None:
    signer = TokenSigner(b"k" * 16)
    token = signer.issue("ünïcode user", now=1000.0, ttl=60)
    assert signer.verify(token, now=1059.0) == "ünïcode user"
    with pytest.raises(TokenError, match="expired"):
        signer.verify(token, now=1061.0)
    with pytest.raises(TokenError, match="signature"):
        TokenSigner(b"z" * 16).verify(token, now=1000.0)
    with pytest.raises(TokenError, match="malformed"):
        signer.verify("nope", now=0)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        TokenSigner(b"short")
