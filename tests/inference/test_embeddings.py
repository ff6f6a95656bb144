from __future__ import annotations

import base64
import struct

from corral.inference.embeddings import encode_base64


def test_base64_is_little_endian_float32() -> None:
    raw = base64.b64decode(encode_base64([1.0, -2.5]))
    assert struct.unpack("<2f", raw) == (1.0, -2.5)
