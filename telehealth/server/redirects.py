"""Redirect targets that come from input (`next`): only a path on this site, never another host."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

MAX_TARGET = 2000
# Decoded this many times over: a target that still changes after that is refused outright.
_DECODINGS = 3


def _plain_path(value: str) -> bool:
    """A path on this host as a browser reads it: browsers drop tabs and newlines and read `\\` as `/`, so
    `/\\evil.example` and `/<tab>/evil.example` lead to another host just as `//evil.example` does."""
    if not value.startswith("/") or value.startswith(("//", "/\\")) or "\\" in value:
        return False
    if any(ch < " " or ch == "\x7f" or "\x80" <= ch < "\xa0" for ch in value):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc


def local_path(value: str | None) -> str | None:
    """`value` when it is a path on this site, in every decoding of it; else None (the caller's default)."""
    if not value or len(value) > MAX_TARGET:
        return None
    seen = value
    for _ in range(_DECODINGS):
        if not _plain_path(seen):
            return None
        decoded = unquote(seen)
        if decoded == seen:
            return value
        seen = decoded
    return None
