"""The signed consent that must exist before a request is queued: an on-screen signature (a PNG drawn in
the browser or sent by the API as a data URL) or a photo or scan of the signed paper form. Either is kept
as an attachment of kind `consent` with the consultation."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from pathlib import Path

from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.files import FileStore
from telehealth.records.models import ConsentDocument

# A signature drawn on a tablet is a few kilobytes; this leaves room. A request carrying the largest one and
# every text at its longest still fits a WebSocket message (tests/signaling/test_wire.py sends it).
MAX_SIGNATURE_BYTES = 48 * 1024
DATA_URL_PREFIX = "data:image/png;base64,"
# The same limit as the length of the data URL: base64 writes 4 characters for every 3 bytes.
MAX_SIGNATURE_CHARS = len(DATA_URL_PREFIX) + 4 * -(-MAX_SIGNATURE_BYTES // 3)


def attachments_root(data_dir: str) -> Path:
    return Path(data_dir).resolve() / "attachments"


def decode_signature(data_url: str) -> bytes:
    """The PNG bytes of a `data:image/png;base64,...` signature; anything else is refused."""
    if not isinstance(data_url, str) or not data_url.startswith(DATA_URL_PREFIX):
        raise TelehealthError(ErrorCode.invalid_input, "the signature must be a data:image/png;base64 URL")
    encoded = data_url[len(DATA_URL_PREFIX):]
    if len(data_url) > MAX_SIGNATURE_CHARS:
        raise TelehealthError(ErrorCode.too_large, "a signature is limited to {kib} KiB", kib=MAX_SIGNATURE_BYTES // 1024)
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise TelehealthError(ErrorCode.invalid_input, "the signature is not valid base64") from None
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or len(data) < 67:
        raise TelehealthError(ErrorCode.invalid_input, "the signature is not a PNG image")
    return data


async def store_signature(files: FileStore, data_url: str) -> ConsentDocument:
    data = decode_signature(data_url)
    stored = await files.save_bytes(data, MAX_SIGNATURE_BYTES)
    return ConsentDocument(stored.sha256, stored.content_type, stored.size, "consent-signature.png")


async def store_form(files: FileStore, chunks: AsyncIterator[bytes], filename: str, max_bytes: int) -> ConsentDocument:
    """A photo or scan of the signed paper form (JPEG, PNG, WebP or PDF, checked by content)."""
    stored = await files.save(chunks, max_bytes)
    name = (filename or "consent-form").replace("/", "_").replace("\\", "_")[:200]
    return ConsentDocument(stored.sha256, stored.content_type, stored.size, name)


def synthetic_signature(width: int = 64, height: int = 16) -> str:
    """A drawn-looking signature as a PNG data URL, for the Python test client and benchmarks (the
    counterpart of the synthetic camera): a dark stroke across a white field."""
    import struct
    import zlib

    rows = []
    for y in range(height):
        row = bytearray([0])  # filter: none
        for x in range(width):
            on = abs(y - (height // 2 + int(3 * ((x % 16) - 8) / 8))) <= 1
            row += b"\x20\x20\x40" if on else b"\xff\xff\xff"
        rows.append(bytes(row))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))
    return DATA_URL_PREFIX + base64.b64encode(png).decode()
