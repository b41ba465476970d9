"""Second factor: enrolling an authenticator app (TOTP), the code step of signing in, recovery codes, and an
administrator's reset. Which roles must have one is a setting (`security.second_factor_roles`)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from telehealth import second_factor as totp
from telehealth.accounts import hash_password, verify_password
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.login_limits import CODE
from telehealth.records.models import SecondFactor, User
from telehealth.schema import Text

if TYPE_CHECKING:
    from telehealth.services.context import Actor, Services

# What still stands between a right password and a session.
Step = Literal["done", "code", "enrol"]
# How long the page between the password and the code (or the enrolment) may stay open.
PENDING_TTL_S = 600
ISSUER = "Telehealth 远程会诊"


@dataclass(frozen=True)
class CodeInput:
    """A six-digit code from the app, or a recovery code."""

    code: Annotated[str, Text(1, 40)]


@dataclass(frozen=True)
class Enrolment:
    """What the enrolment page shows: the otpauth:// address (as a QR code) and the secret to type instead."""

    uri: str
    secret: str

    @property
    def grouped_secret(self) -> str:
        return totp.grouped(self.secret)


@dataclass(frozen=True)
class Pending:
    """A sign-in whose password was right and whose second step is still to come."""

    user: User
    step: Step


def _hash_codes(codes: list[str]) -> list[str]:
    return [hash_password(totp.clean(c)) for c in codes]


def _find_code(hashes: list[tuple[int, str]], code: str) -> int | None:
    cleaned = totp.clean(code)
    for code_id, code_hash in hashes:
        if verify_password(code_hash, cleaned):
            return code_id
    return None


class SecondFactors:
    def __init__(self, services: Services) -> None:
        self._s = services

    def required_for(self, user: User) -> bool:
        return user.role.value in self._s.settings.security.second_factor_roles

    async def status(self, user_id: int) -> SecondFactor | None:
        return await self._s.store.get_second_factor(user_id)

    async def next_step(self, user: User) -> Step:
        """After the right password: the code when the account has an app; the enrolment when its role needs
        one and it has none; otherwise nothing."""
        factor = await self._s.store.get_second_factor(user.id)
        if factor is not None and factor.enrolled:
            return "code"
        return "enrol" if self.required_for(user) else "done"

    # -- between the password and the session ---------------------------------------------------------

    def _signature(self, payload: str, user: User) -> str:
        # Keyed by the server secret and the account's password hash: a new password voids a pending sign-in.
        key = self._s.settings.secret_key.encode()
        return hmac.new(key, f"second-factor\n{payload}\n{user.password_hash}".encode(), hashlib.sha256).hexdigest()

    def pending_token(self, user: User, step: Step) -> str:
        """A token (for a cookie) that carries a sign-in from its password to its second step."""
        expires = int(self._s.clock()) + PENDING_TTL_S
        payload = f"{user.id}.{step}.{expires}.{secrets.token_urlsafe(12)}"
        return base64.urlsafe_b64encode(f"{payload}.{self._signature(payload, user)}".encode()).decode()

    async def pending(self, token: str) -> Pending | None:
        """The sign-in a pending token carries, while it is fresh and its account active; the step is the one
        that stands now (an enrolment finished in another tab leads to the code)."""
        try:
            text = base64.urlsafe_b64decode(token.encode()).decode()
            payload, signature = text.rsplit(".", 1)
            user_id, step, expires, _ = payload.split(".", 3)
            uid, until = int(user_id), int(expires)
        except (ValueError, UnicodeError):
            return None
        if step not in ("code", "enrol") or until < self._s.clock():
            return None
        user = await self._s.store.get_user(uid)
        if user is None or not user.active or not hmac.compare_digest(signature, self._signature(payload, user)):
            return None
        now_step = await self.next_step(user)
        if now_step == "done":
            return None
        return Pending(user, now_step)

    # -- the code step --------------------------------------------------------------------------------

    async def verify(self, user: User, code: str, remote: str) -> None:
        """The code step of signing in: a code from the app (each good once) or an unused recovery code.
        Counted by the login limits like the password; a success ends the sign-in (audited `login.ok`)."""
        from telehealth.services.context import Actor

        limits = self._s.login_limits
        wait = await limits.begin(CODE, user.username, remote, self._s.clock())
        if wait:
            raise TelehealthError(ErrorCode.login_rate_limited, "too many attempts: wait {seconds} s and try again",
                                  seconds=wait)
        actor = Actor(user, remote)
        method = await self._check_code(user, code)
        if method is None:
            await self._s.audit(actor, "second_factor.failed", f"user:{user.id}")
            raise TelehealthError(ErrorCode.auth_failed, "the code is not right, or was used already")
        await limits.succeeded(user.username, remote, self._s.clock())
        async with self._s.unit(actor) as unit:
            unit.audit("second_factor.use", f"user:{user.id}", {"method": method})
            unit.audit("login.ok", f"user:{user.id}")

    async def _check_code(self, user: User, code: str) -> str | None:
        """"totp" or "recovery" when the code is good (and now spent), None otherwise."""
        store = self._s.store
        factor = await store.get_second_factor(user.id)
        if factor is None or not factor.enrolled:
            return None
        if totp.is_totp_code(code):
            step = totp.matching_step(factor.secret, code, self._s.clock())
            if step is not None and await store.update_second_factor_step(user.id, step):
                return "totp"
            return None
        hashes = await store.list_recovery_code_hashes(user.id)
        found = await asyncio.to_thread(_find_code, hashes, code)
        if found is not None and await store.update_recovery_code_used(found, now=self._s.now()):
            return "recovery"
        return None

    # -- enrolment --------------------------------------------------------------------------------------

    async def begin_enrolment(self, user: User) -> Enrolment:
        """The secret of a new enrolment (the one already waiting, if any, so a reloaded page shows the QR code
        that was scanned)."""
        store = self._s.store
        factor = await store.get_second_factor(user.id)
        if factor is not None and factor.enrolled:
            raise TelehealthError(ErrorCode.conflict, "this account has an authenticator app already")
        if factor is None:
            secret = totp.new_secret()
            await store.insert_second_factor(user.id, secret, now=self._s.now())
        else:
            secret = factor.secret
        return Enrolment(totp.provisioning_uri(secret, user.username, ISSUER), secret)

    async def confirm_enrolment(self, actor: Actor, code: str) -> list[str]:
        """The first code from the app confirms the enrolment; the recovery codes come back, to be shown once.
        A wrong code counts as a failed sign-in step."""
        user, store, limits = actor.user, self._s.store, self._s.login_limits
        wait = await limits.begin(CODE, user.username, actor.remote, self._s.clock())
        if wait:
            raise TelehealthError(ErrorCode.login_rate_limited, "too many attempts: wait {seconds} s and try again",
                                  seconds=wait)
        factor = await store.get_second_factor(user.id)
        if factor is None or factor.enrolled:
            raise TelehealthError(ErrorCode.conflict, "there is no enrolment waiting for a code: start again")
        step = totp.matching_step(factor.secret, code, self._s.clock())
        if step is None:
            await self._s.audit(actor, "second_factor.enrol_failed", f"user:{user.id}")
            raise TelehealthError(ErrorCode.invalid_input, "the code is not right: check the app and try again")
        codes = totp.new_recovery_codes()
        hashes = await asyncio.to_thread(_hash_codes, codes)
        await limits.passed(CODE, user.username, actor.remote)
        async with self._s.unit(actor) as unit:
            if not await store.update_second_factor_enrolled(user.id, step, now=unit.now):
                raise TelehealthError(ErrorCode.conflict, "there is no enrolment waiting for a code: start again")
            await store.insert_recovery_codes(user.id, hashes, now=unit.now)
            unit.audit("second_factor.enrol", f"user:{user.id}", {"recovery_codes": len(codes)})
        return codes

    async def finish_enrolment_sign_in(self, actor: Actor) -> None:
        """An enrolment made between the password and the session ends that sign-in."""
        await self._s.login_limits.succeeded(actor.user.username, actor.remote, self._s.clock())
        await self._s.audit(actor, "login.ok", f"user:{actor.id}")

    async def renew_recovery_codes(self, actor: Actor, code: str) -> list[str]:
        """New recovery codes in place of the old ones, for a current code from the app."""
        user, limits = actor.user, self._s.login_limits
        wait = await limits.begin(CODE, user.username, actor.remote, self._s.clock())
        if wait:
            raise TelehealthError(ErrorCode.login_rate_limited, "too many attempts: wait {seconds} s and try again",
                                  seconds=wait)
        factor = await self._s.store.get_second_factor(user.id)
        step = totp.matching_step(factor.secret, code, self._s.clock()) if factor and factor.enrolled else None
        if step is None or not await self._s.store.update_second_factor_step(user.id, step):
            await self._s.audit(actor, "second_factor.failed", f"user:{user.id}")
            raise TelehealthError(ErrorCode.invalid_input, "the code is not right: check the app and try again")
        await limits.passed(CODE, user.username, actor.remote)
        codes = totp.new_recovery_codes()
        hashes = await asyncio.to_thread(_hash_codes, codes)
        async with self._s.unit(actor) as unit:
            await self._s.store.insert_recovery_codes(user.id, hashes, now=unit.now)
            unit.audit("second_factor.recovery_codes", f"user:{user.id}", {"recovery_codes": len(codes)})
        return codes

    # -- administrators ---------------------------------------------------------------------------------

    async def reset(self, actor: Actor | None, user_id: int) -> bool:
        """An administrator (of the account's alliance) removes an account's app and recovery codes; `actor`
        None is the operator's command line. Its next sign-in enrols again if its role needs a second factor."""
        if actor is not None:
            await self._s.accounts.managed_user(actor, user_id)
        async with self._s.unit(actor) as unit:
            removed = await self._s.store.delete_second_factor(user_id)
            unit.audit("second_factor.reset", f"user:{user_id}", {"had_one": removed})
        return removed
