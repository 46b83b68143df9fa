"""The mint's side of sealing (orchestrator.ca.sealing): AES-256-GCM boxes.

A box is nonce (12 random bytes) + ciphertext + tag, base64. The associated data (the
secret's id) is authenticated, not stored: a box opens only for the object it was
sealed for. Runs in the mint process only (it imports `cryptography`).
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from netagent.contract.errors import InvalidArgument, PermissionDenied

NONCE_BYTES = 12
Request = dict[str, Any]


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidArgument(f"mint request field {what!r}: expected base64 text", op="mint")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"mint request field {what!r}: not base64", op="mint") from None


def _pairs(request: Request, field: str) -> list[tuple[bytes, bytes]]:
    aads, items = request.get("aad"), request.get(field)
    if not isinstance(aads, list) or not isinstance(items, list) or len(aads) != len(items):
        raise InvalidArgument(
            f"mint request: 'aad' and {field!r} must be lists of one length", op="mint"
        )
    return [(str(aad).encode(), _b64(item, field)) for aad, item in zip(aads, items, strict=True)]


def _cipher(request: Request) -> AESGCM:
    key = _b64(request.get("key"), "key")
    if len(key) != 32:
        raise InvalidArgument("mint request field 'key': expected 32 bytes", op="mint")
    return AESGCM(key)


def seal(request: Request) -> dict[str, list[str]]:
    cipher = _cipher(request)
    boxes = []
    for aad, data in _pairs(request, "data"):
        nonce = os.urandom(NONCE_BYTES)
        boxes.append(base64.b64encode(nonce + cipher.encrypt(nonce, data, aad)).decode())
    return {"sealed": boxes}


def open_boxes(request: Request) -> dict[str, list[str]]:
    cipher = _cipher(request)
    opened = []
    for aad, box in _pairs(request, "sealed"):
        try:
            data = cipher.decrypt(box[:NONCE_BYTES], box[NONCE_BYTES:], aad)
        except InvalidTag:
            raise PermissionDenied(
                f"the sealed value of {aad.decode()} does not open with this data key "
                "(another key, or the value was changed)",
                obj=aad.decode(),
                op="open secret",
            ) from None
        opened.append(base64.b64encode(data).decode())
    return {"data": opened}
