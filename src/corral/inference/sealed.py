"""Reasoning returned to stateless clients: the thinking encrypted with a key derived from
the server's secret, so a client can send it back without storing anything here, and
cannot forge or alter it. The Responses API returns it as a reasoning item's
``encrypted_content`` (when ``include`` asks), the Messages API as a thinking block's
``signature``.

Fernet (from ``cryptography``) rather than a construction of our own: authenticated
encryption (AES-CBC + HMAC-SHA256) with a timestamp, and a refusal for any altered byte.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

from corral.core.errors import InvalidRequestError


class Sealer:
    def __init__(self, secret: bytes) -> None:
        key = hashlib.sha256(b"corral reasoning encryption|" + secret).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def open(self, token: str, param: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except (InvalidToken, ValueError):
            raise InvalidRequestError(
                "The encrypted reasoning (or thinking signature) could not be verified: it "
                "was altered, or made by another server.",
                param=param,
                code="invalid_encrypted_content",
            ) from None
