"""Accounts: signing in (web sessions and API tokens), a user's own language, and the administrators' work
on the accounts of their alliance (create, edit, deactivate, set a new password)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Literal

from telehealth.accounts import (
    MIN_PASSWORD_LENGTH,
    api_token_digest,
    hash_password_async,
    new_token,
    password_problem,
    token_digest,
    verify_password_async,
)
from telehealth.domain import SPECIALTIES, OrgLevel, Role, Title
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.login_limits import PASSWORD
from telehealth.records.models import ApiToken, Organisation, User
from telehealth.schema import InputError, Items, Range, Text, require

if TYPE_CHECKING:
    from telehealth.services.context import Actor, Services, Unit
    from telehealth.services.second_factors import Step

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,79}$")
# The institutions each role works at.
ROLE_LEVELS: dict[Role, tuple[OrgLevel, ...]] = {
    Role.clinic_doctor: (OrgLevel.village_clinic, OrgLevel.township_centre),
    Role.specialist: (OrgLevel.county_hospital, OrgLevel.city_hospital),
    Role.admin: tuple(OrgLevel),
}
MAX_PASSWORD = 200
Password = Annotated[str, Text(0, MAX_PASSWORD)]
# Why a socket is closed when access ends (the close reason the client reads; see docs/protocol.md).
REVOKED_DEACTIVATED = "account_deactivated"
REVOKED_PASSWORD = "password_changed"
REVOKED_LOGOUT = "signed_out"
REVOKED_TOKEN = "token_revoked"


def credential_id(digest: str) -> str:
    """A short name for one web session or API token, safe to pass between nodes: it tells a socket whether
    the credential it was opened with is the one that ended, and opens nothing."""
    return hashlib.sha256(("credential:" + digest).encode()).hexdigest()[:24]


def check_password_rule(password: str, *names: str, field: str = "password") -> None:
    problem = password_problem(password, *names)
    require(problem is None, problem or "", field=field, min=MIN_PASSWORD_LENGTH)


@dataclass(frozen=True)
class Credentials:
    username: Annotated[str, Text(0, 80)]
    password: Annotated[str, Text(0, 1024)]
    label: Annotated[str, Text(0, 200)] = ""
    # The second factor's code, for the API token of an account that has one.
    code: Annotated[str, Text(0, 40)] = ""


@dataclass(frozen=True)
class SignIn:
    """A right password, and what still stands before a session: nothing, the code, or an enrolment."""

    user: User
    step: Step


@dataclass(frozen=True)
class ProfileInput:
    """What colleagues see of an account: its name, title and specialties (checked against the role)."""

    display_name: Annotated[str, Text(1, 200)]
    title: Title | None = None
    specialties: Annotated[list[str], Items(len(SPECIALTIES))] = field(default_factory=list)
    active: bool = True

    def check_for(self, role: Role) -> None:
        require(all(s in SPECIALTIES for s in self.specialties), "choose specialties from the list",
                field="specialties")
        if role is Role.specialist:
            require(self.title is not None, "a specialist needs a professional title", field="title")
            require(bool(self.specialties), "a specialist needs at least one specialty", field="specialties")


@dataclass(frozen=True)
class NewUserInput:
    username: Annotated[str, Text(3, 80)]
    role: Role
    display_name: Annotated[str, Text(1, 200)]
    password: Password
    organisation_id: Annotated[int, Range(1)] | None = None
    title: Title | None = None
    specialties: Annotated[list[str], Items(len(SPECIALTIES))] = field(default_factory=list)
    language: Literal["", "zh_CN", "en"] = ""
    is_system_admin: bool = False

    def validate(self) -> None:
        require(bool(USERNAME.match(self.username)),
                "a username has 3 to 80 lower-case letters, digits, dots, dashes or underscores",
                field="username")
        self.profile.check_for(self.role)
        check_password_rule(self.password, self.username, self.display_name)

    @property
    def profile(self) -> ProfileInput:
        return ProfileInput(self.display_name, self.title, list(self.specialties))


@dataclass(frozen=True)
class PasswordInput:
    password: Password


@dataclass(frozen=True)
class ChangePasswordInput:
    """A user's new password, with their current one to show it is them."""

    current_password: Annotated[str, Text(0, 1024)]
    new_password: Password


@dataclass(frozen=True)
class WebSession:
    """A signed-in browser: the cookie's value (given once) and the session's CSRF token."""

    cookie: str
    csrf_token: str
    user: User


@dataclass(frozen=True)
class Identity:
    """Who a request or a socket speaks for, with which credential, and until when (a POSIX time)."""

    user: User
    credential: str
    expires: float
    csrf_token: str = ""
    session_digest: str = ""


class Accounts:
    def __init__(self, services: Services) -> None:
        self._s = services

    # -- signing in ----------------------------------------------------------------------------------

    async def check_password(self, credentials: Credentials, remote: str) -> SignIn:
        """The active account these credentials open; otherwise `auth_failed`, the same answer for an unknown
        name, a wrong password and a deactivated account. Both outcomes are audited. Past the login limits
        (`telehealth/login_limits.py`) the answer is `login_rate_limited` with the seconds to wait, whatever the
        password, and the password is not checked. What comes back says whether a second step follows: the
        code of the account's authenticator app, or the enrolment of one its role requires."""
        store = self._s.store
        username = credentials.username.strip()
        await self._begin_attempt(PASSWORD, username, remote)
        user = await store.get_user_by_username(username) if username else None
        ok = await verify_password_async(user.password_hash if user else None, credentials.password)
        if not ok or user is None or not user.active:
            await store.insert_audit("login.failed", actor_id=user.id if user else None,
                                     target=f"user:{user.id}" if user else "", remote=remote, now=self._s.now())
            raise TelehealthError(ErrorCode.auth_failed, "wrong username or password")
        step = await self._s.second_factors.next_step(user)
        if step == "done":
            await store.insert_audit("login.ok", actor_id=user.id, target=f"user:{user.id}", remote=remote,
                                     now=self._s.now())
            await self._s.login_limits.succeeded(username, remote, self._s.clock())
        else:
            # The password's count starts again; the code's, which the second step counts, does not.
            await store.insert_audit("login.password_ok", actor_id=user.id, target=f"user:{user.id}",
                                     remote=remote, now=self._s.now(), detail={"next": step})
            await self._s.login_limits.passed(PASSWORD, username, remote)
        return SignIn(user, step)

    async def _begin_attempt(self, step: str, username: str, remote: str) -> None:
        wait = await self._s.login_limits.begin(step, username, remote, self._s.clock())
        if wait:
            raise TelehealthError(ErrorCode.login_rate_limited, "too many attempts: wait {seconds} s and try again",
                                  seconds=wait)

    async def start_web_session(self, user: User) -> WebSession:
        settings = self._s.settings
        cookie, csrf = new_token(), new_token()
        await self._s.store.insert_web_session(
            token_digest(settings.secret_key, cookie), user.id, csrf, now=self._s.now(),
            ttl=dt.timedelta(seconds=settings.security.session_ttl_s))
        return WebSession(cookie, csrf, user)

    async def web_session(self, cookie: str) -> Identity | None:
        """The active account a live session cookie signs in."""
        digest = token_digest(self._s.settings.secret_key, cookie)
        session = await self._s.store.get_web_session(digest, self._s.now())
        if session is None:
            return None
        user = await self._s.store.get_user(session.user_id)
        if user is None or not user.active:
            return None
        return Identity(user, credential_id(digest), session.expires_at.timestamp(), session.csrf_token, digest)

    async def end_web_session(self, user: User, digest: str) -> None:
        """Sign out: the session ends, and so does every socket the browser opened with it."""
        async with self._s.unit(None) as unit:
            await self._s.store.delete_web_session(digest)
            unit.outbox.to_user(user.id, "access_revoked", {"reason": REVOKED_LOGOUT,
                                                            "credential": credential_id(digest)})

    async def change_own_password(self, actor: Actor, body: ChangePasswordInput, session_digest: str | None) -> None:
        """A user changes their own password (the current one asked): their other web sessions end, their API
        tokens are revoked, and the sockets of both close; the session they did it from stays."""
        user = actor.user
        if not await verify_password_async(user.password_hash, body.current_password):
            await self._s.audit(actor, "user.password_change_refused", f"user:{user.id}")
            raise InputError("current_password", "the current password is not right")
        check_password_rule(body.new_password, user.username, user.display_name, field="new_password")
        password_hash = await hash_password_async(body.new_password)
        async with self._s.unit(actor) as unit:
            await self._s.store.update_user_password(user.id, password_hash)
            await self._end_access(unit, user.id, REVOKED_PASSWORD, keep=session_digest)
            unit.audit("user.password_change", f"user:{user.id}")

    async def _end_access(self, unit: Unit, user_id: int, reason: str, *, keep: str | None = None) -> None:
        """End a user's web sessions (but `keep`) and API tokens, and tell every node to close their sockets."""
        store = self._s.store
        await store.delete_web_sessions(user_id, keep=keep)
        await store.revoke_api_tokens(user_id, now=unit.now)
        unit.outbox.to_user(user_id, "access_revoked", {
            "reason": reason, "keep": credential_id(keep) if keep else None})

    async def mint_api_token(self, credentials: Credentials, remote: str) -> tuple[str, User]:
        """A new API token for the account these credentials open (shown once; the store keeps its hash). An
        account with an authenticator app sends its current code (or a recovery code) as well; one whose role
        requires an app and has none enrols in the browser first."""
        signed = await self.check_password(credentials, remote)
        user = signed.user
        if signed.step == "enrol":
            raise TelehealthError(ErrorCode.second_factor_enrolment_required,
                                  "your role signs in with a second factor: set it up in the browser first")
        if signed.step == "code":
            if not credentials.code.strip():
                raise TelehealthError(ErrorCode.second_factor_required,
                                      "this account signs in with a second factor: send its code as `code`")
            await self._s.second_factors.verify(user, credentials.code, remote)
        token = new_token()
        async with self._s.unit(_actor(user, remote)) as unit:
            await self._s.store.insert_api_token(api_token_digest(token), user.id, credentials.label, unit.now)
            unit.audit("api_token.create", f"user:{user.id}")
        return token, user

    async def token_identity(self, token: str) -> Identity | None:
        """The active account an API token belongs to, unless the token was revoked or has expired."""
        ttl = dt.timedelta(seconds=self._s.settings.security.api_token_ttl_s)
        digest = api_token_digest(token)
        found = await self._s.store.get_api_token_owner(digest, issued_after=self._s.now() - ttl)
        if found is None:
            return None
        user, issued = found
        return Identity(user, credential_id(digest), (issued + ttl).timestamp())

    async def list_tokens(self, actor: Actor, user_id: int | None = None) -> list[ApiToken]:
        """A user's API tokens: their own, or (for an administrator) an account they manage."""
        owner = actor.id if user_id is None or user_id == actor.id else (await self.managed_user(actor, user_id)).id
        ttl = dt.timedelta(seconds=self._s.settings.security.api_token_ttl_s)
        return await self._s.store.list_api_tokens(owner, ttl=ttl)

    async def revoke_token(self, actor: Actor, token_id: int, user_id: int | None = None) -> None:
        """Revoke an API token (the owner's own, or an administrator's for an account they manage); every socket
        opened with it closes."""
        owner = actor.id if user_id is None or user_id == actor.id else (await self.managed_user(actor, user_id)).id
        store = self._s.store
        async with self._s.unit(actor) as unit:
            token_hash = await store.revoke_api_token(token_id, owner, now=unit.now)
            if token_hash is None:
                raise TelehealthError(ErrorCode.not_found, "no such API token, or it was revoked already")
            unit.audit("api_token.revoke", f"user:{owner}", {"token": token_id})
            unit.outbox.to_user(owner, "access_revoked", {"reason": REVOKED_TOKEN,
                                                          "credential": credential_id(token_hash)})

    async def set_language(self, actor: Actor, language: str) -> None:
        await self._s.store.update_user_language(actor.id, language)

    # -- administrators ------------------------------------------------------------------------------

    async def managed_organisations(self, actor: Actor) -> tuple[int | None, dict[int, Organisation]]:
        """The administrator's alliance (None: every alliance) and the organisations they manage."""
        alliance = await self._s.access.admin_alliance(actor)
        orgs = await self._s.store.list_organisations(alliance)
        return alliance, {o.id: o for o in orgs}

    async def list_users(self, actor: Actor, *, organisation_id: int | None = None,
                         role: Role | None = None) -> list[User]:
        alliance, orgs = await self.managed_organisations(actor)
        users = await self._s.store.list_all_users(organisation_ids=None if alliance is None else list(orgs),
                                                   include_system_admins=actor.user.is_system_admin)
        return [u for u in users if (organisation_id is None or u.organisation_id == organisation_id)
                and (role is None or u.role is role)]

    async def managed_user(self, actor: Actor, user_id: int) -> User:
        """An account this administrator may manage (`not_found` otherwise, so ids cannot be probed)."""
        _, orgs = await self.managed_organisations(actor)
        user = await self._s.store.get_user(user_id)
        if user is None or (not actor.user.is_system_admin
                            and (user.is_system_admin or user.organisation_id not in orgs)):
            raise TelehealthError(ErrorCode.not_found, "no such user in your alliance")
        return user

    async def create_user(self, actor: Actor | None, body: NewUserInput) -> User:
        """An administrator creates an account in their alliance; `actor` None is the operator's command line,
        which may create system administrators. The role's institution rule holds on both paths."""
        store = self._s.store
        org: Organisation | None = None
        if actor is not None:
            _, orgs = await self.managed_organisations(actor)
            org = orgs.get(body.organisation_id) if body.organisation_id is not None else None
            require(org is not None, "choose an organisation of your alliance", field="organisation_id")
            require(not body.is_system_admin or actor.user.is_system_admin,
                    "only a system administrator creates system administrators", field="is_system_admin")
        elif body.organisation_id is not None:
            org = await store.get_organisation(body.organisation_id)
            require(org is not None, "no such organisation", field="organisation_id")
        if org is None:
            require(body.role is Role.admin and body.is_system_admin,
                    "an account belongs to an organisation (only a system administrator may have none)",
                    field="organisation_id")
        else:
            require(org.level in ROLE_LEVELS[body.role],
                    "clinic doctors belong to a village clinic or township centre, specialists to a hospital",
                    field="organisation_id")
        username = body.username.lower()
        require(await store.get_user_by_username(username) is None, "this username is taken", field="username")
        password_hash = await hash_password_async(body.password)
        async with self._s.unit(actor) as unit:
            user = await store.insert_user(
                username, password_hash, body.display_name.strip(), body.role,
                organisation_id=org.id if org else None, now=unit.now, title=body.title,
                specialties=body.specialties, language=body.language or (actor.user.language if actor else ""),
                is_system_admin=body.is_system_admin)
            unit.audit("user.create", f"user:{user.id}",
                       {"role": body.role.value, "organisation": org.id if org else None})
        return user

    async def update_profile(self, actor: Actor, user_id: int, body: ProfileInput) -> User:
        """Change an account's profile; deactivating it ends its sessions and revokes its API tokens."""
        user = await self.managed_user(actor, user_id)
        body.check_for(user.role)
        require(body.active or user.id != actor.id, "you cannot deactivate your own account", field="active")
        profile = dataclasses.replace(body, display_name=body.display_name.strip())
        async with self._s.unit(actor) as unit:
            updated = await self._s.store.update_user(
                user.id, display_name=profile.display_name, title=profile.title,
                specialties=tuple(dict.fromkeys(profile.specialties)), active=profile.active)
            changed = [k for k in ("display_name", "title", "specialties", "active")
                       if getattr(updated, k) != getattr(user, k)]
            unit.audit("user.update", f"user:{user.id}", {"changed": ",".join(changed)})
            if user.active and not profile.active:
                await self._end_access(unit, user.id, REVOKED_DEACTIVATED)
        if user.active and not profile.active:
            # Off the queue's rings and out of presence at once, on every node.
            await self._s.matcher.withdraw_specialist(user.id)
        return updated

    async def set_password(self, actor: Actor, user_id: int, body: PasswordInput) -> None:
        """An administrator sets a new password: every session and token of the account ends."""
        user = await self.managed_user(actor, user_id)
        check_password_rule(body.password, user.username, user.display_name)
        password_hash = await hash_password_async(body.password)
        async with self._s.unit(actor) as unit:
            await self._s.store.update_user_password(user.id, password_hash)
            await self._end_access(unit, user.id, REVOKED_PASSWORD)
            unit.audit("user.password", f"user:{user.id}")


def _actor(user: User, remote: str) -> Actor:
    from telehealth.services.context import Actor

    return Actor(user, remote)
