"""Accounts: users, their web sessions and their API tokens."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from telehealth.domain import Role, Title
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records import schema as t
from telehealth.records.models import ApiToken, User, WebSession
from telehealth.records.store.base import StoreBase, new_id
from telehealth.records.store.rows import as_user

# The lookups every request and every WebSocket connect makes, built once (building a statement and its cache
# key costs more than running it on SQLite).
_USER = sa.select(t.users).where(t.users.c.id == sa.bindparam("w_id"))
_WEB_SESSION = sa.select(t.web_sessions).where(t.web_sessions.c.token_hash == sa.bindparam("w_hash"),
                                               t.web_sessions.c.expires_at > sa.bindparam("w_now"))
_TOKEN_OWNER = sa.select(t.users, t.api_tokens.c.created_at.label("token_created_at")).join(
    t.api_tokens, t.api_tokens.c.user_id == t.users.c.id).where(
    t.api_tokens.c.token_hash == sa.bindparam("w_hash"), t.api_tokens.c.revoked_at.is_(None),
    t.users.c.active.is_(True), t.api_tokens.c.created_at > sa.bindparam("w_after"))


class AccountStore(StoreBase):
    """Users, web sessions and API tokens."""

    async def insert_user(self, username: str, password_hash: str, display_name: str, role: Role, *,
                          organisation_id: int | None, now: dt.datetime, title: Title | None = None,
                          specialties: Iterable[str] = (), language: str = "",
                          is_system_admin: bool = False) -> User:
        specialties = tuple(specialties)
        if any("," in s for s in specialties):
            raise TelehealthError(ErrorCode.invalid_input, "a specialty code cannot contain a comma")
        try:
            async with self._tx() as conn:
                res = await conn.execute(t.users.insert().values(
                    username=username, password_hash=password_hash, display_name=display_name, role=role.value,
                    organisation_id=organisation_id, title=title.value if title else None,
                    specialties=",".join(specialties), language=language, is_system_admin=is_system_admin,
                    active=True, created_at=now))
                uid = new_id(res)
        except IntegrityError:
            raise TelehealthError(ErrorCode.conflict, "the username \"{username}\" is taken",
                                  username=username) from None
        user = await self.get_user(uid)
        assert user is not None
        return user

    async def get_user(self, user_id: int) -> User | None:
        row = await self._first(_USER, {"w_id": user_id})
        return as_user(row) if row else None

    async def get_user_by_username(self, username: str) -> User | None:
        row = await self._first(sa.select(t.users).where(t.users.c.username == username))
        return as_user(row) if row else None

    async def list_users(self, *, role: Role | None = None, organisation_ids: Iterable[int] | None = None,
                         specialty: str | None = None) -> list[User]:
        query = sa.select(t.users).where(t.users.c.active.is_(True)).order_by(t.users.c.id)
        if role is not None:
            query = query.where(t.users.c.role == role.value)
        if organisation_ids is not None:
            query = query.where(t.users.c.organisation_id.in_(list(organisation_ids)))
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        users = [as_user(r) for r in rows]
        if specialty is not None:
            users = [u for u in users if specialty in u.specialties]
        return users

    async def list_all_users(self, *, organisation_ids: Iterable[int] | None = None,
                             include_system_admins: bool = True) -> list[User]:
        """Every account, active or not (the administrators' list)."""
        u = t.users
        query = sa.select(u).order_by(u.c.organisation_id, u.c.role, u.c.username)
        if organisation_ids is not None:
            query = query.where(u.c.organisation_id.in_(list(organisation_ids)))
        if not include_system_admins:
            query = query.where(u.c.is_system_admin.is_(False))
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [as_user(r) for r in rows]

    async def update_user(self, user_id: int, *, display_name: str, title: Title | None,
                          specialties: Iterable[str], active: bool) -> User:
        """Change an account's profile; deactivating it also ends its sessions and revokes its API tokens."""
        specialties = tuple(specialties)
        async with self._tx() as conn:
            await conn.execute(t.users.update().where(t.users.c.id == user_id).values(
                display_name=display_name, title=title.value if title else None,
                specialties=",".join(specialties), active=active))
            if not active:
                await conn.execute(t.web_sessions.delete().where(t.web_sessions.c.user_id == user_id))
                await conn.execute(t.api_tokens.update().where(
                    t.api_tokens.c.user_id == user_id, t.api_tokens.c.revoked_at.is_(None)).values(
                    revoked_at=dt.datetime.now(dt.UTC)))
        user = await self.get_user(user_id)
        if user is None:
            raise TelehealthError(ErrorCode.not_found, "no such user")
        return user

    async def update_user_password(self, user_id: int, password_hash: str) -> None:
        async with self._tx() as conn:
            await conn.execute(t.users.update().where(t.users.c.id == user_id).values(password_hash=password_hash))

    async def update_user_language(self, user_id: int, language: str) -> None:
        async with self._tx() as conn:
            await conn.execute(t.users.update().where(t.users.c.id == user_id).values(language=language))

    async def insert_web_session(self, token_hash: str, user_id: int, csrf_token: str, *, now: dt.datetime,
                                 ttl: dt.timedelta) -> None:
        async with self._tx() as conn:
            await conn.execute(t.web_sessions.delete().where(t.web_sessions.c.expires_at <= now))
            await conn.execute(t.web_sessions.insert().values(
                token_hash=token_hash, user_id=user_id, csrf_token=csrf_token, created_at=now,
                expires_at=now + ttl))

    async def get_web_session(self, token_hash: str, now: dt.datetime) -> WebSession | None:
        row = await self._first(_WEB_SESSION, {"w_hash": token_hash, "w_now": now})
        return WebSession(row.user_id, row.csrf_token, row.expires_at) if row else None

    async def delete_web_session(self, token_hash: str) -> None:
        async with self._tx() as conn:
            await conn.execute(t.web_sessions.delete().where(t.web_sessions.c.token_hash == token_hash))

    async def insert_api_token(self, token_hash: str, user_id: int, label: str, now: dt.datetime) -> None:
        async with self._tx() as conn:
            await conn.execute(t.api_tokens.insert().values(token_hash=token_hash, user_id=user_id, label=label,
                                                            created_at=now))

    async def get_user_for_api_token(self, token_hash: str) -> User | None:
        a, u = t.api_tokens, t.users
        row = await self._first(
                sa.select(u).join(a, a.c.user_id == u.c.id).where(a.c.token_hash == token_hash,
                                                                  a.c.revoked_at.is_(None),
                                                                  u.c.active.is_(True)))
        return as_user(row) if row else None

    async def get_api_token_owner(self, token_hash: str, *,
                                  issued_after: dt.datetime) -> tuple[User, dt.datetime] | None:
        """The active owner of a token not revoked and issued after `issued_after`, with when it was issued."""
        row = await self._first(_TOKEN_OWNER, {"w_hash": token_hash, "w_after": issued_after})
        return (as_user(row), row.token_created_at) if row else None

    # Ending access: a new password, a deactivation, a revoked token.

    async def delete_web_sessions(self, user_id: int, *, keep: str | None = None) -> int:
        """End a user's web sessions, all of them or all but the one whose digest is `keep`."""
        ws = t.web_sessions
        query = ws.delete().where(ws.c.user_id == user_id)
        if keep is not None:
            query = query.where(ws.c.token_hash != keep)
        async with self._tx() as conn:
            return int((await conn.execute(query)).rowcount or 0)

    async def revoke_api_tokens(self, user_id: int, *, now: dt.datetime) -> int:
        a = t.api_tokens
        async with self._tx() as conn:
            res = await conn.execute(a.update().where(a.c.user_id == user_id, a.c.revoked_at.is_(None))
                                     .values(revoked_at=now))
            return int(res.rowcount or 0)

    async def list_api_tokens(self, user_id: int, *, ttl: dt.timedelta) -> list[ApiToken]:
        a = t.api_tokens
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(a).where(a.c.user_id == user_id)
                                       .order_by(a.c.created_at.desc(), a.c.id.desc()).limit(200))).all()
        return [ApiToken(r.id, r.user_id, r.label, r.created_at, r.created_at + ttl, r.revoked_at) for r in rows]

    async def revoke_api_token(self, token_id: int, user_id: int, *, now: dt.datetime) -> str | None:
        """Revoke one of a user's tokens; its hash, or None when it is not theirs or was revoked already."""
        a = t.api_tokens
        async with self._tx() as conn:
            res = await conn.execute(a.update().where(a.c.id == token_id, a.c.user_id == user_id,
                                                      a.c.revoked_at.is_(None)).values(revoked_at=now))
            if not res.rowcount:
                return None
            return str((await conn.execute(sa.select(a.c.token_hash).where(a.c.id == token_id))).scalar_one())
