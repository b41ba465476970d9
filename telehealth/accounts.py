"""Passwords and tokens: argon2 hashes for passwords, keyed hashes for bearer tokens."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# A fixed hash to verify against when the username is unknown, so timing does not reveal which
# usernames exist.
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("telehealth-not-a-password")

MIN_PASSWORD_LENGTH = 10


@functools.cache
def _common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords of the leaked-password corpora, as the zxcvbn project keeps them."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


def password_problem(password: str, *names: str) -> str | None:
    """Why a new password is refused (a message template naming `{min}`), or None when it will do: long
    enough, not a common password, and not one of the account's own names."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return "a password has at least {min} characters"
    folded = password.strip().lower()
    if folded in _common_passwords():
        return "this password is among the most common ones: choose another"
    squeezed = "".join(folded.split())
    for name in names:
        if name and squeezed == "".join(name.strip().lower().split()):
            return "a password cannot be the username or the name"
    return None


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def hash_password_async(password: str) -> str:
    """argon2 costs tens of milliseconds of CPU: keep it off the event loop."""
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(secret_key: str, token: str) -> str:
    """What the store keeps of a session cookie or API token: useless without the server's secret."""
    return hmac.new(secret_key.encode(), token.encode(), hashlib.sha256).hexdigest()


def api_token_digest(token: str) -> str:
    """API tokens must outlive a change of the server secret, so they are hashed without it."""
    return hashlib.sha256(token.encode()).hexdigest()
