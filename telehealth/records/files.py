"""Attachment files kept by content hash under the data dir: type checked by content, size capped,
written to a temporary file and renamed, so a failed upload leaves nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from telehealth.errors import ErrorCode, TelehealthError

# What clinics send: photos (rash, wound, ECG printout), scans and PDFs of test results.
SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"%PDF-", 0, "application/pdf"),
    (b"WEBP", 8, "image/webp"),
)
SNIFF_BYTES = 16


def sniff(head: bytes) -> str | None:
    """The content type by the file's first bytes, whatever its name claims."""
    for magic, offset, content_type in SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            if content_type == "image/webp" and head[:4] != b"RIFF":
                continue
            return content_type
    return None


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    content_type: str


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise TelehealthError(ErrorCode.not_found, "no such file")
        return self.root / sha256[:2] / sha256

    async def save_bytes(self, data: bytes, max_bytes: int) -> StoredFile:
        """A small file already in memory (a drawn signature): checked, then written in one step off the loop."""
        if len(data) > max_bytes:
            raise TelehealthError(ErrorCode.too_large, "files are limited to {kib} KiB", kib=max_bytes // 1024)
        if not data:
            raise TelehealthError(ErrorCode.invalid_input, "the file is empty")
        content_type = sniff(data[:SNIFF_BYTES])
        if content_type is None:
            raise TelehealthError(ErrorCode.unsupported_type,
                                  "only photos (JPEG, PNG, WebP) and PDF documents are accepted")
        sha = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(self._write_whole, self.path_for(sha), data)
        return StoredFile(sha, len(data), content_type)

    def _write_whole(self, final: Path, data: bytes) -> None:
        if final.exists():
            return  # stored by its hash: the same content is already there
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp_name, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise

    async def save(self, chunks: AsyncIterator[bytes], max_bytes: int) -> StoredFile:
        """Stream an upload to disk; refuse it (leaving nothing) if too large or of an unaccepted type."""
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        fd, tmp_name = await asyncio.to_thread(tempfile.mkstemp, dir=self.root, prefix=".upload-")
        tmp = Path(tmp_name)
        digest = hashlib.sha256()
        size = 0
        head = b""
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise TelehealthError(ErrorCode.too_large,
                                              "files are limited to {mb} MB", mb=max_bytes // (1024 * 1024))
                    if len(head) < SNIFF_BYTES:
                        head += chunk[:SNIFF_BYTES - len(head)]
                    digest.update(chunk)
                    await asyncio.to_thread(out.write, chunk)
            if size == 0:
                raise TelehealthError(ErrorCode.invalid_input, "the file is empty")
            content_type = sniff(head)
            if content_type is None:
                raise TelehealthError(ErrorCode.unsupported_type,
                                      "only photos (JPEG, PNG, WebP) and PDF documents are accepted")
            sha = digest.hexdigest()
            final = self.path_for(sha)
            await asyncio.to_thread(final.parent.mkdir, exist_ok=True)
            await asyncio.to_thread(os.replace, tmp, final)
            return StoredFile(sha, size, content_type)
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(tmp.unlink)
