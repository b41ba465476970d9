"""The second factor's codes: TOTP (RFC 6238, 30-second steps, six digits, through pyotp) from an authenticator
app, and single-use recovery codes, stored as argon2 hashes and shown once."""

from __future__ import annotations

import hmac
import secrets

import pyotp

STEP_S = 30
DIGITS = 6
RECOVERY_CODES = 10
# Lower-case letters and digits without the ones read alike (0/o, 1/l/i): 32 signs, 5 bits each.
_RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
_RECOVERY_LENGTH = 10  # 50 bits: guessing one among ten, ten guesses a minute, takes millennia


def new_secret() -> str:
    """A new shared secret: 32 base32 signs, 160 bits, as RFC 4226 recommends."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The otpauth:// address an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).provisioning_uri(name=account, issuer_name=issuer)


def grouped(secret: str) -> str:
    """The secret in groups of four, for typing it into an app that cannot scan."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def clean(code: str) -> str:
    """What was typed, without the spaces and dashes people put in, lower-cased."""
    return "".join(ch for ch in code.strip().lower() if ch not in " -\t")


def is_totp_code(code: str) -> bool:
    cleaned = clean(code)
    return len(cleaned) == DIGITS and cleaned.isascii() and cleaned.isdigit()


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The step whose code this is: the current one or one either side (a phone's clock a little off); None
    when it is none of them."""
    if not is_totp_code(code):
        return None
    cleaned = clean(code)
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S)
    current = int(now // STEP_S)
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.at(step * STEP_S), cleaned):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """Ten single-use codes, written xxxxx-xxxxx."""
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    return codes
