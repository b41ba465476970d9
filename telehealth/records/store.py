"""The records store: the source of truth for organisations, accounts, consultations, sessions and events."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from telehealth.domain import ConsultationState, OrgLevel, Role, Title, Urgency, check_transition
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records import quota
from telehealth.records import schema as t
from telehealth.records.models import (
    Addendum,
    Agreement,
    Alliance,
    ApiToken,
    CallSession,
    Consultation,
    Diagnosis,
    DutyDay,
    Event,
    NewConsultation,
    NewReferral,
    Note,
    Organisation,
    Referral,
    ReferralTask,
    Slot,
    SlotDay,
    User,
    WebSession,
)

_UNSET: Any = object()
_STATE_STAMP = {
    ConsultationState.queued: "queued_at",
    ConsultationState.offered: "offered_at",
    ConsultationState.accepted: "accepted_at",
    ConsultationState.in_call: "in_call_at",
    ConsultationState.ended: "ended_at",
    ConsultationState.signed: "signed_at",
    ConsultationState.closed: "closed_at",
    ConsultationState.cancelled: "cancelled_at",
    ConsultationState.expired: "expired_at",
}
GENESIS_HASH = "0" * 64
CONFLICT_RETRIES = 3


class StoreUnavailable(TelehealthError):
    """The database could not be reached or did not answer."""

    def __init__(self, detail: str) -> None:
        super().__init__(ErrorCode.unavailable, "the records database is unavailable; try again shortly")
        self.detail = detail


def audit_entry_hash(prev_hash: str, at: dt.datetime, actor_id: int | None, action: str, target: str,
                     remote: str, detail: dict[str, Any]) -> str:
    """The chained hash of one audit entry; `telehealth audit verify` recomputes it."""
    payload = json.dumps(
        [prev_hash, at.astimezone(dt.UTC).isoformat(timespec="microseconds"), actor_id, action, target, remote,
         detail],
        sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _user(row: Any) -> User:
    return User(
        id=row.id, username=row.username, display_name=row.display_name, role=Role(row.role),
        organisation_id=row.organisation_id, title=Title(row.title) if row.title else None,
        specialties=tuple(s for s in row.specialties.split(",") if s), language=row.language,
        is_system_admin=row.is_system_admin, active=row.active, password_hash=row.password_hash)


def _organisation(row: Any) -> Organisation:
    return Organisation(
        id=row.id, name=row.name, name_zh=row.name_zh, level=OrgLevel(row.level), alliance_id=row.alliance_id,
        leads_alliance=row.leads_alliance, city_group_pilot=row.city_group_pilot,
        reserved_share_pct=row.reserved_share_pct, region=row.region)


def _consultation(row: Any) -> Consultation:
    return Consultation(
        id=row.id, patient_id=row.patient_id, clinic_org_id=row.clinic_org_id,
        requesting_doctor_id=row.requesting_doctor_id, accompanying_doctor_id=row.accompanying_doctor_id,
        specialty=row.specialty, urgency=Urgency(row.urgency), complex_case=row.complex_case,
        requested_specialist_id=row.requested_specialist_id,
        min_title=Title(row.min_title) if row.min_title else None, title_fallback=row.title_fallback,
        state=ConsultationState(row.state), assigned_specialist_id=row.assigned_specialist_id,
        version=row.version, created_at=row.created_at, queued_at=row.queued_at, accepted_at=row.accepted_at,
        ended_at=row.ended_at, consent_at=row.consent_at, updated_at=row.updated_at, reason=row.reason,
        purpose=row.purpose, chief_complaint=row.chief_complaint, history=row.history,
        consent_by=row.consent_by, consent_name=row.consent_name, consent_relation=row.consent_relation,
        clinic_decision=row.clinic_decision, clinic_decision_note=row.clinic_decision_note)


NOTE_FIELDS = frozenset({"subjective", "objective", "assessment", "diagnoses", "plan", "disposition"})


def _note(row: Any) -> Note:
    return Note(
        id=row.id, consultation_id=row.consultation_id, author_id=row.author_id, subjective=row.subjective,
        objective=row.objective, assessment=row.assessment,
        diagnoses=tuple(Diagnosis(d["code"], d["description"]) for d in (row.diagnoses or [])), plan=row.plan,
        disposition=dict(row.disposition or {}), store_and_forward=row.store_and_forward,
        draft_saved_at=row.draft_saved_at, signed_at=row.signed_at, signed_by=row.signed_by)


def _slot(row: Any) -> Slot:
    return Slot(row.id, row.hospital_org_id, row.department, row.starts_at, row.duration_min, row.location,
                row.reserved, row.released_at, row.booked_consultation_id, row.booked_at)


def _call_session(row: Any) -> CallSession:
    return CallSession(
        id=row.id, consultation_id=row.consultation_id, clinic_user_id=row.clinic_user_id,
        specialist_user_id=row.specialist_user_id, started_at=row.started_at, connected_at=row.connected_at,
        ended_at=row.ended_at, end_reason=row.end_reason)


_INSERT_PATIENT = t.patients.insert().returning(t.patients.c.id)
_INSERT_CONSULTATION = t.consultations.insert().returning(*t.consultations.c)
_INSERT_ATTACHMENT = t.attachments.insert()
_INSERT_EVENT = t.events.insert()
_CONSULTATION = sa.select(t.consultations).where(t.consultations.c.id == sa.bindparam("w_id"))
_INSERT_CALL_SESSION = t.call_sessions.insert().returning(t.call_sessions.c.id)
_CALL_SESSION = sa.select(t.call_sessions).where(t.call_sessions.c.id == sa.bindparam("w_id"))
_OPEN_CALL_SESSION = (sa.select(t.call_sessions)
                      .where(t.call_sessions.c.consultation_id == sa.bindparam("w_consultation"),
                             t.call_sessions.c.ended_at.is_(None))
                      .order_by(t.call_sessions.c.id.desc()))
_END_CALL_SESSION = (t.call_sessions.update()
                     .where(t.call_sessions.c.id == sa.bindparam("w_id"), t.call_sessions.c.ended_at.is_(None))
                     .returning(t.call_sessions.c.consultation_id))
_LOCK_CONSULTATION = sa.select(t.consultations).where(t.consultations.c.id == sa.bindparam("w_id")).with_for_update()
# The SET columns are the parameters' keys; w_id and w_version pick the row at the version read.
_UPDATE_CONSULTATION = t.consultations.update().where(t.consultations.c.id == sa.bindparam("w_id"),
                                                      t.consultations.c.version == sa.bindparam("w_version"))


# The fields of a new consultation as the one-statement insert binds them (the patient comes from its CTE).
_NEW_CONSULTATION_FIELDS = (
    "clinic_org_id", "requesting_doctor_id", "accompanying_doctor_id", "specialty", "urgency", "complex_case",
    "requested_specialist_id", "min_title", "title_fallback", "reason", "purpose", "chief_complaint", "history",
    "consent_by", "consent_name", "consent_relation", "consent_at", "state", "version", "created_at",
    "updated_at", "queued_at")
_NEW_PATIENT_FIELDS = ("organisation_id", "name", "sex", "birth_year", "local_id", "created_at")
_NEW_ATTACHMENT_FIELDS = ("sha256", "content_type", "size", "filename", "kind", "uploaded_by", "created_at")


def _typed(name: str, column: sa.Column[Any]) -> Any:
    """A parameter cast to its column's type (PostgreSQL cannot infer it in a select list)."""
    return sa.cast(sa.bindparam(name, type_=column.type), column.type)


def _new_consultation_statement() -> Any:
    """A new request as one statement on PostgreSQL: patient, consultation, consent document and first events
    in data-modifying CTEs. One round trip, atomic by itself, instead of a transaction of five."""
    p, c, a, e = t.patients, t.consultations, t.attachments, t.events
    patient = p.insert().from_select(
        list(_NEW_PATIENT_FIELDS), sa.select(*[_typed(f"p_{f}", p.c[f]) for f in _NEW_PATIENT_FIELDS])
    ).returning(p.c.id).cte("new_patient")
    consultation = c.insert().from_select(
        ["patient_id", *_NEW_CONSULTATION_FIELDS],
        sa.select(patient.c.id, *[_typed(f"c_{f}", c.c[f]) for f in _NEW_CONSULTATION_FIELDS]),
    ).returning(*c.c).cte("new_consultation")
    document = a.insert().from_select(
        ["consultation_id", *_NEW_ATTACHMENT_FIELDS],
        sa.select(consultation.c.id, *[_typed(f"a_{f}", a.c[f]) for f in _NEW_ATTACHMENT_FIELDS])
        .where(sa.bindparam("with_document", type_=sa.Boolean)),
    ).returning(a.c.id).cte("new_document")
    first = sa.select(consultation.c.id, sa.literal("requested", sa.String), _typed("requested_by", e.c.actor_id),
                      _typed("requested_at", e.c.at), _typed("requested_data", e.c.data))
    queued = sa.select(consultation.c.id, sa.literal("queued", sa.String), _typed("requested_by", e.c.actor_id),
                       _typed("requested_at", e.c.at), _typed("queued_data", e.c.data)
                       ).where(sa.bindparam("queued", type_=sa.Boolean))
    events = e.insert().from_select(["consultation_id", "kind", "actor_id", "at", "data"],
                                    sa.union_all(first, queued)).returning(e.c.id).cte("new_events")
    return sa.select(consultation).add_cte(document, events)


_INSERT_NEW_CONSULTATION = _new_consultation_statement()


class Store:
    """All durable reads and writes. Methods take `now` where time matters; none reads a clock."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # The transaction a service operation has open in this task: every store call made inside
        # `transaction()` joins it, so an operation's writes and its audit entry commit or fail together.
        self._open: ContextVar[AsyncConnection | None] = ContextVar(f"store-tx-{id(self)}", default=None)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """One transaction for every store call made inside it (in this task); nested uses join the outer one.

        Code inside must let a `TelehealthError` from the store propagate: the transaction then rolls back
        whole. Do not start tasks inside it: they would share its connection."""
        if self._open.get() is not None:
            yield
            return
        with _unavailable_on_connectivity():
            async with self.engine.begin() as conn:
                token = self._open.set(conn)
                try:
                    yield
                finally:
                    self._open.reset(token)

    @property
    def in_transaction(self) -> bool:
        return self._open.get() is not None

    @asynccontextmanager
    async def _tx(self, *, single_statement: bool = False) -> AsyncIterator[AsyncConnection]:
        """A transaction; or, for one statement that is atomic by itself, no BEGIN and COMMIT round trips.
        Inside `transaction()`, the open one."""
        joined = self._open.get()
        if joined is not None:
            yield joined
            return
        with _unavailable_on_connectivity():
            if single_statement:
                async with self.engine.connect() as plain:
                    yield await plain.execution_options(isolation_level="AUTOCOMMIT")
                return
            async with self.engine.begin() as conn:
                yield conn

    async def ping(self) -> None:
        async with self._tx() as conn:
            await conn.execute(sa.text("SELECT 1"))

    # -- organisations and alliances -------------------------------------------------------------

    async def insert_alliance(self, name: str, kind: str, *, name_zh: str = "", region: str = "") -> Alliance:
        async with self._tx() as conn:
            res = await conn.execute(t.alliances.insert().values(name=name, name_zh=name_zh, kind=kind,
                                                                 region=region))
            aid = _new_id(res)
        return Alliance(aid, name, name_zh, kind, region)

    async def get_alliance_by_name(self, name: str) -> Alliance | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(t.alliances).where(t.alliances.c.name == name))).first()
        return Alliance(row.id, row.name, row.name_zh, row.kind, row.region) if row else None

    async def list_alliances(self) -> list[Alliance]:
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(t.alliances).order_by(t.alliances.c.id))).all()
        return [Alliance(r.id, r.name, r.name_zh, r.kind, r.region) for r in rows]

    async def insert_organisation(self, name: str, level: OrgLevel, *, alliance_id: int | None, name_zh: str = "",
                                  leads_alliance: bool = False, city_group_pilot: bool = False,
                                  reserved_share_pct: int | None = None, region: str = "") -> Organisation:
        async with self._tx() as conn:
            res = await conn.execute(t.organisations.insert().values(
                name=name, name_zh=name_zh, level=level.value, alliance_id=alliance_id,
                leads_alliance=leads_alliance, city_group_pilot=city_group_pilot,
                reserved_share_pct=reserved_share_pct, region=region))
            oid = _new_id(res)
        org = await self.get_organisation(oid)
        assert org is not None
        return org

    async def get_organisation(self, org_id: int) -> Organisation | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(t.organisations).where(t.organisations.c.id == org_id))).first()
        return _organisation(row) if row else None

    async def get_organisation_by_name(self, name: str) -> Organisation | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(t.organisations).where(t.organisations.c.name == name))).first()
        return _organisation(row) if row else None

    async def list_organisations(self, alliance_id: int | None = None) -> list[Organisation]:
        query = sa.select(t.organisations).order_by(t.organisations.c.id)
        if alliance_id is not None:
            query = query.where(t.organisations.c.alliance_id == alliance_id)
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [_organisation(r) for r in rows]

    async def insert_agreement(self, clinic_org_id: int, hospital_org_id: int, *, valid_from: dt.datetime,
                               valid_to: dt.datetime | None, created_by: int | None, now: dt.datetime) -> int:
        async with self._tx() as conn:
            res = await conn.execute(t.agreements.insert().values(
                clinic_org_id=clinic_org_id, hospital_org_id=hospital_org_id, valid_from=valid_from,
                valid_to=valid_to, created_by=created_by, created_at=now))
            return _new_id(res)

    async def get_partner_hospitals(self, clinic_org_id: int, now: dt.datetime) -> tuple[set[int], set[int]]:
        """(hospitals of the clinic's own alliance, hospitals with any valid agreement incl. the alliance).

        Alliance membership is itself a cooperation agreement; explicit agreements add partners with a
        validity period.
        """
        o = t.organisations
        async with self._tx() as conn:
            clinic = (await conn.execute(sa.select(o.c.alliance_id).where(o.c.id == clinic_org_id))).first()
            alliance: set[int] = set()
            if clinic is not None and clinic.alliance_id is not None:
                rows = await conn.execute(sa.select(o.c.id).where(
                    o.c.alliance_id == clinic.alliance_id,
                    o.c.level.in_([OrgLevel.county_hospital.value, OrgLevel.city_hospital.value])))
                alliance = {r.id for r in rows}
            a = t.agreements
            rows = await conn.execute(sa.select(a.c.hospital_org_id).where(
                a.c.clinic_org_id == clinic_org_id, a.c.valid_from <= now,
                sa.or_(a.c.valid_to.is_(None), a.c.valid_to > now)))
            partners = alliance | {r.hospital_org_id for r in rows}
        return alliance, partners

    async def update_organisation(self, org_id: int, *, name: str, name_zh: str, region: str,
                                  city_group_pilot: bool) -> Organisation:
        try:
            async with self._tx() as conn:
                await conn.execute(t.organisations.update().where(t.organisations.c.id == org_id).values(
                    name=name, name_zh=name_zh, region=region, city_group_pilot=city_group_pilot))
        except IntegrityError:
            raise TelehealthError(ErrorCode.conflict, "an organisation named \"{name}\" exists", name=name) from None
        org = await self.get_organisation(org_id)
        if org is None:
            raise TelehealthError(ErrorCode.not_found, "no such organisation")
        return org

    async def list_agreements(self, org_ids: Iterable[int] | None = None) -> list[Agreement]:
        """Explicit agreements that involve any of `org_ids` (every agreement when None), newest first."""
        a = t.agreements
        query = sa.select(a).order_by(a.c.id.desc())
        if org_ids is not None:
            ids = list(org_ids)
            query = query.where(sa.or_(a.c.clinic_org_id.in_(ids), a.c.hospital_org_id.in_(ids)))
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [Agreement(r.id, r.clinic_org_id, r.hospital_org_id, r.valid_from, r.valid_to, r.created_by)
                for r in rows]

    async def end_agreement(self, agreement_id: int, *, now: dt.datetime) -> bool:
        """End an agreement now (it stops new offers; calls in progress go on). False if it had ended."""
        a = t.agreements
        async with self._tx() as conn:
            res = await conn.execute(a.update().where(
                a.c.id == agreement_id, sa.or_(a.c.valid_to.is_(None), a.c.valid_to > now)).values(valid_to=now))
        return bool(res.rowcount)

    # -- users, sessions, tokens ----------------------------------------------------------------

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
                uid = _new_id(res)
        except IntegrityError:
            raise TelehealthError(ErrorCode.conflict, "the username \"{username}\" is taken", username=username) from None
        user = await self.get_user(uid)
        assert user is not None
        return user

    async def get_user(self, user_id: int) -> User | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(t.users).where(t.users.c.id == user_id))).first()
        return _user(row) if row else None

    async def get_user_by_username(self, username: str) -> User | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(t.users).where(t.users.c.username == username))).first()
        return _user(row) if row else None

    async def list_users(self, *, role: Role | None = None, organisation_ids: Iterable[int] | None = None,
                         specialty: str | None = None) -> list[User]:
        query = sa.select(t.users).where(t.users.c.active.is_(True)).order_by(t.users.c.id)
        if role is not None:
            query = query.where(t.users.c.role == role.value)
        if organisation_ids is not None:
            query = query.where(t.users.c.organisation_id.in_(list(organisation_ids)))
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        users = [_user(r) for r in rows]
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
        return [_user(r) for r in rows]

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
        ws = t.web_sessions
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(ws).where(ws.c.token_hash == token_hash,
                                                          ws.c.expires_at > now))).first()
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
        async with self._tx() as conn:
            row = (await conn.execute(
                sa.select(u).join(a, a.c.user_id == u.c.id).where(a.c.token_hash == token_hash,
                                                                  a.c.revoked_at.is_(None),
                                                                  u.c.active.is_(True)))).first()
        return _user(row) if row else None

    async def get_api_token_owner(self, token_hash: str, *,
                                  issued_after: dt.datetime) -> tuple[User, dt.datetime] | None:
        """The active owner of a token not revoked and issued after `issued_after`, with when it was issued."""
        a, u = t.api_tokens, t.users
        query = sa.select(u, a.c.created_at.label("token_created_at")).join(a, a.c.user_id == u.c.id).where(
            a.c.token_hash == token_hash, a.c.revoked_at.is_(None), u.c.active.is_(True),
            a.c.created_at > issued_after)
        async with self._tx() as conn:
            row = (await conn.execute(query)).first()
        return (_user(row), row.token_created_at) if row else None

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

    # -- consultations ---------------------------------------------------------------------------

    async def insert_consultation(self, request: NewConsultation, *, clinic_org_id: int, doctor_id: int,
                                  now: dt.datetime, queue: bool = False) -> Consultation:
        """Record a new request with its patient, consent and first event, atomically.

        With `queue` (only allowed when consent is recorded) it is also moved on to `queued` in the same
        write, logged as the two steps it is.
        """
        if queue and not request.consent_by:
            raise TelehealthError(ErrorCode.consent_required,
                                  "record the patient's written consent before the request is queued")
        # Statements built once with their parameters passed apart: this runs for every request, and building
        # a statement from many values each time costs more than the database's own work.
        consent_at = now if request.consent_by else None
        if self.engine.dialect.name == "postgresql":
            return await self._insert_consultation_at_once(request, clinic_org_id, doctor_id, now, queue, consent_at)
        async with self._tx() as conn:
            patient_id = (await conn.execute(_INSERT_PATIENT, {
                "organisation_id": clinic_org_id, "name": request.patient_name, "sex": request.patient_sex,
                "birth_year": request.patient_birth_year, "local_id": request.patient_local_id,
                "created_at": now})).scalar_one()
            row = (await conn.execute(_INSERT_CONSULTATION, {
                "patient_id": patient_id, "clinic_org_id": clinic_org_id, "requesting_doctor_id": doctor_id,
                "accompanying_doctor_id": doctor_id, "specialty": request.specialty,
                "urgency": request.urgency.value, "complex_case": request.complex_case,
                "requested_specialist_id": request.requested_specialist_id,
                "min_title": request.min_title.value if request.min_title else None,
                "title_fallback": request.title_fallback, "reason": request.reason, "purpose": request.purpose,
                "chief_complaint": request.chief_complaint, "history": request.history,
                "consent_by": request.consent_by, "consent_name": request.consent_name,
                "consent_relation": request.consent_relation, "consent_at": consent_at,
                "state": (ConsultationState.queued if queue else ConsultationState.requested).value,
                "version": 1 if queue else 0, "created_at": now, "updated_at": now,
                "queued_at": now if queue else None})).one()
            cid = int(row.id)
            events = [{"consultation_id": cid, "kind": "requested", "actor_id": doctor_id, "at": now,
                       "data": {"specialty": request.specialty, "urgency": request.urgency.value,
                                "consent": bool(request.consent_by)}}]
            doc = request.consent_document
            if doc is not None:
                await conn.execute(_INSERT_ATTACHMENT, {
                    "consultation_id": cid, "sha256": doc.sha256, "content_type": doc.content_type,
                    "size": doc.size, "filename": doc.filename, "kind": "consent", "uploaded_by": doctor_id,
                    "created_at": now})
            if queue:
                events.append({"consultation_id": cid, "kind": "queued", "actor_id": doctor_id, "at": now,
                               "data": {"from": "requested", "to": "queued"}})
            await conn.execute(_INSERT_EVENT, events)
        return _consultation(row)

    async def _insert_consultation_at_once(self, request: NewConsultation, clinic_org_id: int, doctor_id: int,
                                           now: dt.datetime, queue: bool,
                                           consent_at: dt.datetime | None) -> Consultation:
        doc = request.consent_document
        params: dict[str, Any] = {
            "p_organisation_id": clinic_org_id, "p_name": request.patient_name, "p_sex": request.patient_sex,
            "p_birth_year": request.patient_birth_year, "p_local_id": request.patient_local_id,
            "p_created_at": now,
            "c_clinic_org_id": clinic_org_id, "c_requesting_doctor_id": doctor_id,
            "c_accompanying_doctor_id": doctor_id, "c_specialty": request.specialty,
            "c_urgency": request.urgency.value, "c_complex_case": request.complex_case,
            "c_requested_specialist_id": request.requested_specialist_id,
            "c_min_title": request.min_title.value if request.min_title else None,
            "c_title_fallback": request.title_fallback, "c_reason": request.reason, "c_purpose": request.purpose,
            "c_chief_complaint": request.chief_complaint, "c_history": request.history,
            "c_consent_by": request.consent_by, "c_consent_name": request.consent_name,
            "c_consent_relation": request.consent_relation, "c_consent_at": consent_at,
            "c_state": (ConsultationState.queued if queue else ConsultationState.requested).value,
            "c_version": 1 if queue else 0, "c_created_at": now, "c_updated_at": now,
            "c_queued_at": now if queue else None,
            "with_document": doc is not None,
            "a_sha256": doc.sha256 if doc else "", "a_content_type": doc.content_type if doc else "",
            "a_size": doc.size if doc else 0, "a_filename": doc.filename if doc else "", "a_kind": "consent",
            "a_uploaded_by": doctor_id, "a_created_at": now,
            "requested_by": doctor_id, "requested_at": now,
            "requested_data": {"specialty": request.specialty, "urgency": request.urgency.value,
                               "consent": bool(request.consent_by)},
            "queued": queue, "queued_data": {"from": "requested", "to": "queued"},
        }
        async with self._tx(single_statement=True) as conn:
            row = (await conn.execute(_INSERT_NEW_CONSULTATION, params)).one()
        return _consultation(row)

    async def get_consultation(self, consultation_id: int) -> Consultation | None:
        async with self._tx() as conn:
            row = (await conn.execute(_CONSULTATION, {"w_id": consultation_id})).first()
        return _consultation(row) if row else None

    async def get_patient_summary(self, patient_id: int) -> dict[str, Any] | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(t.patients).where(t.patients.c.id == patient_id))).first()
        if row is None:
            return None
        return {"name": row.name, "sex": row.sex, "birth_year": row.birth_year, "local_id": row.local_id}

    async def list_consultations(self, *, states: Iterable[ConsultationState] | None = None,
                                 clinic_org_id: int | None = None, specialist_id: int | None = None,
                                 requesting_doctor_id: int | None = None, limit: int = 200) -> list[Consultation]:
        c = t.consultations
        query = sa.select(c).order_by(c.c.id.desc()).limit(limit)
        if states is not None:
            query = query.where(c.c.state.in_([s.value for s in states]))
        if clinic_org_id is not None:
            query = query.where(c.c.clinic_org_id == clinic_org_id)
        if specialist_id is not None:
            query = query.where(c.c.assigned_specialist_id == specialist_id)
        if requesting_doctor_id is not None:
            query = query.where(c.c.requesting_doctor_id == requesting_doctor_id)
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [_consultation(r) for r in rows]

    async def search_consultations(
        self, *, alliance_id: int | None, start: dt.datetime | None = None, end: dt.datetime | None = None,
        clinic_org_id: int | None = None, specialist_id: int | None = None, specialty: str | None = None,
        urgency: str | None = None, state: str | None = None, limit: int = 50, offset: int = 0,
        before_id: int | None = None, count: bool = True, hospital_org_id: int | None = None,
        end_reason: str | None = None,
    ) -> tuple[list[Consultation], int]:
        """A page of consultations matching the filters (newest first) and how many match in all.

        `alliance_id` None means every alliance (a system administrator).
        """
        c, o = t.consultations, t.organisations
        conditions: list[Any] = []
        if alliance_id is not None:
            conditions.append(c.c.clinic_org_id.in_(sa.select(o.c.id).where(o.c.alliance_id == alliance_id)))
        if start is not None:
            conditions.append(c.c.created_at >= start)
        if end is not None:
            conditions.append(c.c.created_at < end)
        for column, wanted in ((c.c.clinic_org_id, clinic_org_id), (c.c.assigned_specialist_id, specialist_id),
                               (c.c.specialty, specialty), (c.c.urgency, urgency), (c.c.state, state)):
            if wanted is not None:
                conditions.append(column == wanted)
        if hospital_org_id is not None:  # the hospital of the specialist who took it
            u = t.users
            conditions.append(c.c.assigned_specialist_id.in_(
                sa.select(u.c.id).where(u.c.organisation_id == hospital_org_id)))
        if end_reason is not None:  # any of its call sessions ended so
            cs = t.call_sessions
            conditions.append(c.c.id.in_(sa.select(cs.c.consultation_id).where(cs.c.end_reason == end_reason)))
        if before_id is not None:
            conditions.append(c.c.id < before_id)  # keyset paging: steady cost however deep the page
        async with self._tx() as conn:
            total = (await conn.execute(sa.select(sa.func.count()).select_from(c).where(*conditions))).scalar_one() \
                if count else -1
            rows = (await conn.execute(sa.select(c).where(*conditions).order_by(c.c.id.desc())
                                       .limit(limit).offset(offset))).all()
        return [_consultation(r) for r in rows], int(total)

    async def iter_consultation_pages(self, *, alliance_id: int | None, batch: int = 500,
                                      **filters: Any) -> AsyncIterator[list[tuple[Consultation, list[CallSession]]]]:
        """Every consultation matching the filters, newest first, a batch at a time with its sessions:
        for exports that must not hold the whole set in memory."""
        before: int | None = None
        while True:
            page, _ = await self.search_consultations(alliance_id=alliance_id, limit=batch, before_id=before,
                                                      count=False, **filters)
            if not page:
                return
            s = t.call_sessions
            async with self._tx() as conn:
                rows = (await conn.execute(sa.select(s).where(s.c.consultation_id.in_([c.id for c in page]))
                                           .order_by(s.c.id))).all()
            sessions: dict[int, list[CallSession]] = {}
            for row in rows:
                sessions.setdefault(row.consultation_id, []).append(_call_session(row))
            yield [(c, sessions.get(c.id, [])) for c in page]
            before = page[-1].id

    async def transition_consultation(
        self, consultation_id: int, target: ConsultationState, *, actor_id: int | None, now: dt.datetime,
        expected: Iterable[ConsultationState] | None = None, assigned_specialist_id: int | None = _UNSET,
        event_kind: str | None = None, event_data: dict[str, Any] | None = None, session_id: int | None = None,
        consent: tuple[str, str, str | None] | None = None,
    ) -> Consultation:
        """Move a consultation to `target`, checked against the state machine, stamped and logged as one write.

        `expected` narrows the states the caller is prepared to move from. A concurrent change between
        read and write is caught by the version column; the move is then judged again against the state
        that change left (it may still be legal: a ring logged while the specialist already accepted), and
        only a move that is no longer legal fails.
        """
        expected = list(expected) if expected is not None else None
        for attempt in range(CONFLICT_RETRIES):
            try:
                async with self._tx() as conn:
                    return await self._transition(
                        conn, consultation_id, target, actor_id=actor_id, now=now, expected=expected,
                        assigned_specialist_id=assigned_specialist_id, event_kind=event_kind,
                        event_data=event_data, session_id=session_id, consent=consent)
            except TelehealthError as exc:
                if exc.code is not ErrorCode.conflict or attempt == CONFLICT_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    async def _transition(
        self, conn: AsyncConnection, consultation_id: int, target: ConsultationState, *, actor_id: int | None,
        now: dt.datetime, expected: Iterable[ConsultationState] | None, assigned_specialist_id: int | None,
        event_kind: str | None, event_data: dict[str, Any] | None, session_id: int | None,
        consent: tuple[str, str, str | None] | None,
    ) -> Consultation:
        row = (await conn.execute(_LOCK_CONSULTATION, {"w_id": consultation_id})).first()
        if row is None:
            raise TelehealthError(ErrorCode.not_found, "consultation {id} does not exist", id=consultation_id)
        current = ConsultationState(row.state)
        if expected is not None:
            allowed = set(expected)
            if current not in allowed:
                raise TelehealthError(
                    ErrorCode.invalid_transition,
                    "consultation {id} is {state}, expected one of {allowed}", id=consultation_id, state=current,
                    allowed=", ".join(sorted(allowed)))
        check_transition(current, target)
        values: dict[str, Any] = {"state": target.value, "version": row.version + 1, "updated_at": now}
        stamp = _STATE_STAMP.get(target)
        if stamp:
            values[stamp] = now
        if assigned_specialist_id is not _UNSET:
            values["assigned_specialist_id"] = assigned_specialist_id
        if consent is not None:
            values.update(consent_by=consent[0], consent_name=consent[1], consent_relation=consent[2],
                          consent_at=now)
        res = await conn.execute(_UPDATE_CONSULTATION, {**values, "w_id": consultation_id, "w_version": row.version})
        if res.rowcount != 1:
            raise TelehealthError(ErrorCode.conflict, "consultation {id} changed meanwhile", id=consultation_id)
        data = {"from": current.value, "to": target.value}
        if event_data:
            data.update(event_data)
        await conn.execute(_INSERT_EVENT, {
            "consultation_id": consultation_id, "session_id": session_id, "kind": event_kind or target.value,
            "actor_id": actor_id, "at": now, "data": data})
        # The row as written: the old one with the new values, without reading it back.
        return _consultation(_Row({**row._mapping, **values}))

    async def close_with_decision(self, consultation_id: int, doctor_id: int, decision: str, note: str, *,
                                  now: dt.datetime) -> Consultation:
        """The clinic doctor records their decision on the signed opinion; the consultation is closed."""
        c = t.consultations
        async with self._tx() as conn:
            await conn.execute(c.update().where(c.c.id == consultation_id, c.c.state == ConsultationState.signed.value)
                               .values(clinic_decision=decision, clinic_decision_note=note, decided_by=doctor_id))
            return await self._transition(
                conn, consultation_id, ConsultationState.closed, actor_id=doctor_id, now=now,
                expected=[ConsultationState.signed], assigned_specialist_id=_UNSET, event_kind="acknowledged",
                event_data={"decision": decision}, session_id=None, consent=None)

    async def update_accompanying_doctor(self, consultation_id: int, doctor_id: int, *, actor_id: int,
                                         now: dt.datetime, session_id: int | None = None) -> int | None:
        """Another doctor of the clinic is now with the patient; during a call they also take the clinic's
        place in it. Recorded as a `handover` event; returns the doctor who handed over (None if no change)."""
        c = t.consultations
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(c.c.accompanying_doctor_id).where(c.c.id == consultation_id))).first()
            if row is None:
                raise TelehealthError(ErrorCode.not_found, "consultation {id} does not exist", id=consultation_id)
            previous = int(row.accompanying_doctor_id)
            if session_id is not None:
                cs = t.call_sessions
                res = await conn.execute(cs.update().where(
                    cs.c.id == session_id, cs.c.consultation_id == consultation_id, cs.c.ended_at.is_(None),
                    cs.c.clinic_user_id != doctor_id).values(clinic_user_id=doctor_id))
                if not res.rowcount:
                    raise TelehealthError(ErrorCode.conflict, "this call has ended or is already yours")
            elif previous == doctor_id:
                return None
            await conn.execute(c.update().where(c.c.id == consultation_id).values(
                accompanying_doctor_id=doctor_id, updated_at=now))
            await conn.execute(t.events.insert().values(
                consultation_id=consultation_id, kind="handover", actor_id=actor_id, at=now, session_id=session_id,
                data={"from_doctor": previous, "to_doctor": doctor_id}))
        return previous

    async def insert_event(self, consultation_id: int, kind: str, *, actor_id: int | None, now: dt.datetime,
                           session_id: int | None = None, data: dict[str, Any] | None = None) -> None:
        async with self._tx() as conn:
            await conn.execute(_INSERT_EVENT, {
                "consultation_id": consultation_id, "session_id": session_id, "kind": kind, "actor_id": actor_id,
                "at": now, "data": data or {}})

    async def insert_events(self, rows: Sequence[dict[str, Any]]) -> None:
        """Many events in one write (each dict: consultation_id, kind, actor_id, at, session_id, data)."""
        if not rows:
            return
        async with self._tx() as conn:
            await conn.execute(t.events.insert(), [
                {"consultation_id": r["consultation_id"], "kind": r["kind"], "actor_id": r.get("actor_id"),
                 "at": r["at"], "session_id": r.get("session_id"), "data": r.get("data") or {}} for r in rows])

    async def list_events(self, consultation_id: int) -> list[Event]:
        e = t.events
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(e).where(e.c.consultation_id == consultation_id)
                                       .order_by(e.c.at, e.c.id))).all()
        return [Event(r.id, r.consultation_id, r.session_id, r.kind, r.actor_id, r.at, dict(r.data)) for r in rows]

    async def get_recent_service_times(self, specialty: str, limit: int = 50) -> list[float]:
        """Seconds from queued to accepted for the latest accepted requests of a specialty."""
        c = t.consultations
        async with self._tx() as conn:
            rows = (await conn.execute(
                sa.select(c.c.queued_at, c.c.accepted_at).where(
                    c.c.specialty == specialty, c.c.accepted_at.is_not(None), c.c.queued_at.is_not(None))
                .order_by(c.c.accepted_at.desc()).limit(limit))).all()
        return [max(0.0, (r.accepted_at - r.queued_at).total_seconds()) for r in rows]

    # -- call sessions ---------------------------------------------------------------------------

    async def open_call_session(self, consultation_id: int, clinic_user_id: int, specialist_user_id: int, *,
                                actor_id: int | None, now: dt.datetime,
                                expected: Iterable[ConsultationState]) -> tuple[Consultation, CallSession]:
        """The consultation goes in_call and its new session is recorded, in one write."""
        async with self._tx() as conn:
            sid = int((await conn.execute(_INSERT_CALL_SESSION, {
                "consultation_id": consultation_id, "clinic_user_id": clinic_user_id,
                "specialist_user_id": specialist_user_id, "started_at": now})).scalar_one())
            consultation = await self._transition(
                conn, consultation_id, ConsultationState.in_call, actor_id=actor_id, now=now, expected=expected,
                assigned_specialist_id=_UNSET, event_kind="call_started", event_data=None, session_id=sid,
                consent=None)
            await conn.execute(_INSERT_EVENT, {"consultation_id": consultation_id, "session_id": sid,
                                               "kind": "session_opened", "actor_id": None, "at": now, "data": {}})
        session = CallSession(sid, consultation_id, clinic_user_id, specialist_user_id, now, None, None, None)
        return consultation, session

    async def get_call_session(self, session_id: int) -> CallSession | None:
        async with self._tx() as conn:
            row = (await conn.execute(_CALL_SESSION, {"w_id": session_id})).first()
        return _call_session(row) if row else None

    async def get_open_call_session(self, consultation_id: int) -> CallSession | None:
        async with self._tx() as conn:
            row = (await conn.execute(_OPEN_CALL_SESSION, {"w_consultation": consultation_id})).first()
        return _call_session(row) if row else None

    async def list_call_sessions(self, consultation_id: int) -> list[CallSession]:
        s = t.call_sessions
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(s).where(s.c.consultation_id == consultation_id)
                                       .order_by(s.c.id))).all()
        return [_call_session(r) for r in rows]

    async def list_open_call_sessions(self) -> list[CallSession]:
        s = t.call_sessions
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(s).where(s.c.ended_at.is_(None)))).all()
        return [_call_session(r) for r in rows]

    async def update_call_session_connected(self, session_id: int, now: dt.datetime) -> None:
        s = t.call_sessions
        async with self._tx() as conn:
            await conn.execute(s.update().where(s.c.id == session_id, s.c.connected_at.is_(None))
                               .values(connected_at=now))

    async def end_call_session(self, session_id: int, reason: str, *, actor_id: int | None,
                               now: dt.datetime) -> bool:
        """Close a session once; False if it was already closed."""
        async with self._tx() as conn:
            row = (await conn.execute(_END_CALL_SESSION, {"w_id": session_id, "ended_at": now,
                                                          "end_reason": reason})).first()
            if row is None:
                return False
            await conn.execute(_INSERT_EVENT, {
                "consultation_id": row.consultation_id, "session_id": session_id, "kind": "session_ended",
                "actor_id": actor_id, "at": now, "data": {"reason": reason}})
        return True

    # -- notes ---------------------------------------------------------------------------------------

    async def get_note(self, consultation_id: int) -> Note | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(t.notes).where(t.notes.c.consultation_id == consultation_id))).first()
        return _note(row) if row else None

    async def save_note_draft(self, consultation_id: int, author_id: int, fields: dict[str, Any], *,
                              now: dt.datetime) -> Note:
        """Create or update the draft; a signed note is refused here (and by the database's trigger)."""
        n = t.notes
        values = {k: v for k, v in fields.items() if k in NOTE_FIELDS}
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(n).where(n.c.consultation_id == consultation_id)
                                      .with_for_update())).first()
            if row is None:
                await conn.execute(n.insert().values(consultation_id=consultation_id, author_id=author_id,
                                                     draft_saved_at=now, **values))
            else:
                if row.signed_at is not None:
                    raise TelehealthError(ErrorCode.note_signed, "the note is signed; add an addendum instead")
                await conn.execute(n.update().where(n.c.id == row.id, n.c.signed_at.is_(None))
                                   .values(draft_saved_at=now, **values))
            saved = (await conn.execute(sa.select(n).where(n.c.consultation_id == consultation_id))).one()
        return _note(saved)

    async def sign_note(self, consultation_id: int, signer_id: int, *, now: dt.datetime,
                        store_and_forward: bool, referral: NewReferral | None = None) -> Note:
        """Sign the note, move the consultation to `signed` and open the disposition's referral, in one write."""
        n = t.notes
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(n).where(n.c.consultation_id == consultation_id)
                                      .with_for_update())).first()
            if row is None:
                raise TelehealthError(ErrorCode.invalid_input, "there is no note to sign yet")
            if row.signed_at is not None:
                raise TelehealthError(ErrorCode.note_signed, "the note is already signed")
            if store_and_forward:
                await self._transition(conn, consultation_id, ConsultationState.ended, actor_id=signer_id, now=now,
                                       expected=[ConsultationState.accepted], assigned_specialist_id=_UNSET,
                                       event_kind="answered_in_writing", event_data=None, session_id=None,
                                       consent=None)
            await conn.execute(n.update().where(n.c.id == row.id).values(
                signed_at=now, signed_by=signer_id, store_and_forward=store_and_forward))
            await self._transition(conn, consultation_id, ConsultationState.signed, actor_id=signer_id, now=now,
                                   expected=[ConsultationState.ended], assigned_specialist_id=_UNSET,
                                   event_kind="note_signed", event_data={"note": row.id}, session_id=None,
                                   consent=None)
            if referral is not None:
                await self._open_referral(conn, consultation_id, referral, signer_id, now)
            signed = (await conn.execute(sa.select(n).where(n.c.id == row.id))).one()
        return _note(signed)

    async def _open_referral(self, conn: AsyncConnection, consultation_id: int, referral: NewReferral,
                             created_by: int, now: dt.datetime) -> None:
        if referral.slot_id is not None:
            held = (await conn.execute(sa.select(t.slots.c.booked_consultation_id).where(
                t.slots.c.id == referral.slot_id))).scalar()
            if held != consultation_id:
                raise TelehealthError(ErrorCode.slot_taken, "the booked slot is no longer held; book one again")
        res = await conn.execute(t.referrals.insert().values(
            consultation_id=consultation_id, direction=referral.direction, from_org_id=referral.from_org_id,
            to_org_id=referral.to_org_id, department=referral.department, slot_id=referral.slot_id,
            priority=referral.priority, care_plan=referral.care_plan, status="open", created_by=created_by,
            created_at=now))
        referral_id = _new_id(res)
        if referral.tasks:
            await conn.execute(t.referral_tasks.insert(), [
                {"referral_id": referral_id, "text": text, "due_date": due} for text, due in referral.tasks])
        await conn.execute(t.events.insert().values(
            consultation_id=consultation_id, kind="referral_opened", actor_id=created_by, at=now,
            data={"referral": referral_id, "direction": referral.direction, "slot": referral.slot_id}))

    async def insert_addendum(self, consultation_id: int, author_id: int, text: str, *, now: dt.datetime) -> Addendum:
        n, a = t.notes, t.addenda
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(n.c.id, n.c.signed_at).where(
                n.c.consultation_id == consultation_id))).first()
            if row is None or row.signed_at is None:
                raise TelehealthError(ErrorCode.invalid_transition, "addenda follow a signed note; edit the draft")
            res = await conn.execute(a.insert().values(note_id=row.id, author_id=author_id, text=text, signed_at=now))
            await conn.execute(t.events.insert().values(
                consultation_id=consultation_id, kind="addendum_signed", actor_id=author_id, at=now,
                data={"note": row.id}))
        return Addendum(_new_id(res), row.id, author_id, text, now)

    async def list_addenda(self, note_id: int) -> list[Addendum]:
        a = t.addenda
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(a).where(a.c.note_id == note_id).order_by(a.c.id))).all()
        return [Addendum(r.id, r.note_id, r.author_id, r.text, r.signed_at) for r in rows]

    # -- attachments ---------------------------------------------------------------------------------

    async def insert_attachment(self, consultation_id: int, sha256: str, content_type: str, size: int,
                                filename: str, uploaded_by: int, *, now: dt.datetime) -> dict[str, Any]:
        a = t.attachments
        async with self._tx() as conn:
            res = await conn.execute(a.insert().values(
                consultation_id=consultation_id, sha256=sha256, content_type=content_type, size=size,
                filename=filename, uploaded_by=uploaded_by, created_at=now))
            await conn.execute(t.events.insert().values(
                consultation_id=consultation_id, kind="attachment_added", actor_id=uploaded_by, at=now,
                data={"content_type": content_type, "size": size}))
        return {"id": _new_id(res), "consultation_id": consultation_id, "sha256": sha256,
                "content_type": content_type, "size": size, "filename": filename, "created_at": now}

    async def list_attachments(self, consultation_id: int) -> list[dict[str, Any]]:
        a = t.attachments
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(a).where(a.c.consultation_id == consultation_id)
                                       .order_by(a.c.id))).all()
        return [dict(r._mapping) for r in rows]

    async def get_attachment(self, consultation_id: int, attachment_id: int) -> dict[str, Any] | None:
        a = t.attachments
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(a).where(a.c.id == attachment_id,
                                                         a.c.consultation_id == consultation_id))).first()
        return dict(row._mapping) if row else None

    # -- audit -----------------------------------------------------------------------------------

    async def insert_audit(self, action: str, *, actor_id: int | None, target: str, remote: str,
                           now: dt.datetime, detail: dict[str, Any] | None = None) -> None:
        """Append one hash-chained audit entry. Entries are serialised so the chain never forks."""
        a = t.audit_log
        detail = detail or {}
        async with self._tx() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7411)"))
            else:
                # Take SQLite's write lock before reading the chain's end.
                await conn.execute(sa.text("UPDATE alembic_version SET version_num = version_num"))
            last = (await conn.execute(sa.select(a.c.hash).order_by(a.c.id.desc()).limit(1))).first()
            prev = last.hash if last else GENESIS_HASH
            entry_hash = audit_entry_hash(prev, now, actor_id, action, target, remote, detail)
            await conn.execute(a.insert().values(at=now, actor_id=actor_id, action=action, target=target,
                                                 remote=remote, detail=detail, prev_hash=prev, hash=entry_hash))

    async def verify_audit_chain(self) -> tuple[int, int | None]:
        """(entries checked, id of the first entry whose hash or link is wrong, or None)."""
        a = t.audit_log
        checked = 0
        prev = GENESIS_HASH
        async with self.engine.connect() as conn:
            result = await conn.stream(sa.select(a).order_by(a.c.id))
            async for row in result:
                expected = audit_entry_hash(prev, row.at, row.actor_id, row.action, row.target, row.remote,
                                            dict(row.detail))
                if row.prev_hash != prev or row.hash != expected:
                    return checked, row.id
                prev = row.hash
                checked += 1
        return checked, None

    async def list_audit(self, *, limit: int = 100, actor_id: int | None = None,
                         action: str | None = None) -> list[dict[str, Any]]:
        a = t.audit_log
        query = sa.select(a).order_by(a.c.id.desc()).limit(limit)
        if actor_id is not None:
            query = query.where(a.c.actor_id == actor_id)
        if action:
            query = query.where(a.c.action == action)
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [dict(r._mapping) for r in rows]

    async def search_audit(self, *, actor_ids: Iterable[int] | None = None, action: str | None = None,
                           target: str | None = None, start: dt.datetime | None = None,
                           end: dt.datetime | None = None, limit: int = 50,
                           offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Audit entries, newest first, filtered: by actors, by action (`note.` matches every note action),
        by target, by time. Returns (one page, the number of matching entries)."""
        a = t.audit_log
        conditions: list[Any] = []
        if actor_ids is not None:
            conditions.append(a.c.actor_id.in_(list(actor_ids)))
        if action:
            conditions.append(a.c.action.startswith(action, autoescape=True) if action.endswith(".")
                              else a.c.action == action)
        if target:
            conditions.append(a.c.target == target)
        if start is not None:
            conditions.append(a.c.at >= start)
        if end is not None:
            conditions.append(a.c.at < end)
        async with self._tx() as conn:
            total = int((await conn.execute(sa.select(sa.func.count()).select_from(a).where(*conditions))).scalar_one())
            rows = (await conn.execute(sa.select(a).where(*conditions).order_by(a.c.id.desc())
                                       .limit(limit).offset(offset))).all()
        return [dict(r._mapping) for r in rows], total

    async def audit_actions(self) -> list[str]:
        a = t.audit_log
        async with self._tx() as conn:
            return [r[0] for r in await conn.execute(sa.select(a.c.action).distinct().order_by(a.c.action))]

    # -- reserved slots ------------------------------------------------------------------------------

    async def publish_slots(self, hospital_org_id: int, department: str, starts: Sequence[dt.datetime], *,
                            duration_min: int, location: str, tz: ZoneInfo) -> tuple[int, int]:
        """Add a department's slots (a start already published is skipped) and top up each touched day's
        reserved share. All or nothing. Returns (slots created, slots newly reserved)."""
        async with self._tx() as conn:
            return await self._publish(conn, hospital_org_id, department,
                                       [(w, duration_min, location) for w in starts], tz)

    async def publish_timetable(self, rows: Sequence[tuple[int, str, dt.datetime, int, str]], *,
                                tz: ZoneInfo) -> tuple[int, int]:
        """Publish an imported timetable of (hospital, department, start, minutes, location) rows in one
        transaction: every row lands or none does."""
        groups: dict[tuple[int, str], list[tuple[dt.datetime, int, str]]] = {}
        for hospital_org_id, department, starts_at, minutes, location in rows:
            groups.setdefault((hospital_org_id, department), []).append((starts_at, minutes, location))
        created = reserved = 0
        async with self._tx() as conn:
            for (hospital_org_id, department), items in groups.items():
                c, r = await self._publish(conn, hospital_org_id, department, items, tz)
                created, reserved = created + c, reserved + r
        return created, reserved

    async def _publish(self, conn: AsyncConnection, hospital_org_id: int, department: str,
                       items: Sequence[tuple[dt.datetime, int, str]], tz: ZoneInfo) -> tuple[int, int]:
        s = t.slots
        org_row = (await conn.execute(sa.select(t.organisations).where(
            t.organisations.c.id == hospital_org_id))).first()
        if org_row is None:
            raise TelehealthError(ErrorCode.not_found, "organisation {id} does not exist", id=hospital_org_id)
        org = _organisation(org_row)
        by_start = {w: (minutes, location) for w, minutes, location in items}
        wanted = sorted(by_start)
        existing: set[dt.datetime] = set()
        if wanted:
            existing = set((await conn.execute(sa.select(s.c.starts_at).where(
                s.c.hospital_org_id == hospital_org_id, s.c.department == department,
                s.c.starts_at >= wanted[0], s.c.starts_at <= wanted[-1]))).scalars())
        fresh = [w for w in wanted if w not in existing]
        if fresh:
            await conn.execute(s.insert(), [
                {"hospital_org_id": hospital_org_id, "department": department, "starts_at": w,
                 "duration_min": by_start[w][0], "location": by_start[w][1], "reserved": False} for w in fresh])
        reserved = 0
        for day in sorted({quota.local_day(w, tz) for w in fresh}):
            reserved += await self._top_up_reserved(conn, org, department, day, tz)
        return len(fresh), reserved

    async def set_reserved_share(self, org_id: int, pct: int | None, *, now: dt.datetime, tz: ZoneInfo) -> int:
        """Set a hospital's reserved share (None: the policy floor) and top up its days still ahead. A lower
        share never takes back slots already reserved. Returns how many slots were newly reserved."""
        o, s = t.organisations, t.slots
        async with self._tx() as conn:
            await conn.execute(o.update().where(o.c.id == org_id).values(reserved_share_pct=pct))
            row = (await conn.execute(sa.select(o).where(o.c.id == org_id))).first()
            if row is None:
                raise TelehealthError(ErrorCode.not_found, "organisation {id} does not exist", id=org_id)
            org = _organisation(row)
            ahead = (await conn.execute(sa.select(s.c.department, s.c.starts_at).where(
                s.c.hospital_org_id == org_id, s.c.starts_at >= now))).all()
            reserved = 0
            for department, day in sorted({(r.department, quota.local_day(r.starts_at, tz)) for r in ahead}):
                reserved += await self._top_up_reserved(conn, org, department, day, tz)
        return reserved

    async def _top_up_reserved(self, conn: AsyncConnection, org: Organisation, department: str, day: dt.date,
                               tz: ZoneInfo) -> int:
        s = t.slots
        start, end = quota.day_bounds(day, tz)
        rows = (await conn.execute(sa.select(s.c.id, s.c.reserved, s.c.booked_consultation_id, s.c.released_at)
                                   .where(s.c.hospital_org_id == org.id, s.c.department == department,
                                          s.c.starts_at >= start, s.c.starts_at < end)
                                   .order_by(s.c.starts_at))).all()
        missing = quota.reserved_needed(len(rows), quota.reserved_share(org)) - sum(1 for r in rows if r.reserved)
        candidates = [r.id for r in rows if not r.reserved and r.booked_consultation_id is None]
        chosen = quota.spread(candidates, missing)
        if chosen:
            await conn.execute(s.update().where(s.c.id.in_(chosen)).values(reserved=True))
        return len(chosen)

    async def get_slot(self, slot_id: int) -> Slot | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(t.slots).where(t.slots.c.id == slot_id))).first()
        return _slot(row) if row else None

    async def list_slots(self, *, hospital_org_ids: Iterable[int] | None = None, department: str | None = None,
                         start: dt.datetime | None = None, end: dt.datetime | None = None,
                         open_reserved: bool = False, limit: int = 500) -> list[Slot]:
        """Slots by time; `open_reserved`: only reserved slots neither booked nor released."""
        s = t.slots
        query = sa.select(s).order_by(s.c.starts_at, s.c.id).limit(limit)
        if hospital_org_ids is not None:
            query = query.where(s.c.hospital_org_id.in_(list(hospital_org_ids)))
        if department:
            query = query.where(s.c.department == department)
        if start is not None:
            query = query.where(s.c.starts_at >= start)
        if end is not None:
            query = query.where(s.c.starts_at < end)
        if open_reserved:
            query = query.where(s.c.reserved.is_(True), s.c.booked_consultation_id.is_(None),
                                s.c.released_at.is_(None))
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [_slot(r) for r in rows]

    async def get_booking(self, consultation_id: int) -> Slot | None:
        s = t.slots
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(s).where(s.c.booked_consultation_id == consultation_id))).first()
        return _slot(row) if row else None

    async def book_slot(self, consultation_id: int, slot_id: int, *, now: dt.datetime, tz: ZoneInfo,
                        release_hours: float) -> Slot:
        """Book a reserved slot for a consultation's referral, atomically: of any number of concurrent bookings
        of one slot exactly one succeeds; the others get `slot_taken` and change nothing. A consultation holds
        at most one slot: booking another gives the first back."""
        s = t.slots
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(s).where(s.c.id == slot_id))).first()
            if row is None:
                raise TelehealthError(ErrorCode.not_found, "slot {id} does not exist", id=slot_id)
            if row.booked_consultation_id == consultation_id:
                return _slot(row)
            if not row.reserved:
                raise TelehealthError(ErrorCode.slot_taken, "this slot is not in the reserved pool")
            if row.released_at is not None or now >= quota.release_cutoff(row.starts_at, tz, release_hours):
                raise TelehealthError(ErrorCode.slot_taken, "this slot has gone back to the general pool")
            await conn.execute(s.update().where(s.c.booked_consultation_id == consultation_id)
                               .values(booked_consultation_id=None, booked_at=None))
            result = await conn.execute(s.update().where(
                s.c.id == slot_id, s.c.booked_consultation_id.is_(None), s.c.released_at.is_(None),
            ).values(booked_consultation_id=consultation_id, booked_at=now))
            if result.rowcount != 1:
                raise TelehealthError(ErrorCode.slot_taken, "this slot was just booked by someone else")
            await conn.execute(t.events.insert().values(
                consultation_id=consultation_id, kind="slot_booked", actor_id=None, at=now, data={"slot": slot_id}))
            booked = (await conn.execute(sa.select(s).where(s.c.id == slot_id))).one()
        return _slot(booked)

    async def cancel_booking(self, consultation_id: int, *, now: dt.datetime) -> bool:
        """Give a consultation's slot back to the reserved pool (before the note is signed)."""
        s = t.slots
        async with self._tx() as conn:
            result = await conn.execute(s.update().where(s.c.booked_consultation_id == consultation_id)
                                        .values(booked_consultation_id=None, booked_at=None))
            if result.rowcount:
                await conn.execute(t.events.insert().values(
                    consultation_id=consultation_id, kind="slot_cancelled", actor_id=None, at=now, data={}))
        return bool(result.rowcount)

    async def release_reserved_slots(self, *, now: dt.datetime, tz: ZoneInfo, release_hours: float) -> int:
        """Hand unbooked reserved slots whose cut-off has passed back to the general pool. Idempotent; a booking
        racing it either lands first (the slot stays booked) or finds the slot released."""
        s = t.slots
        horizon = now + dt.timedelta(hours=release_hours) + dt.timedelta(days=1, hours=14)
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(s.c.id, s.c.starts_at).where(
                s.c.reserved.is_(True), s.c.booked_consultation_id.is_(None), s.c.released_at.is_(None),
                s.c.starts_at < horizon))).all()
            due = [r.id for r in rows if now >= quota.release_cutoff(r.starts_at, tz, release_hours)]
            released = 0
            for chunk in range(0, len(due), 500):
                result = await conn.execute(s.update().where(
                    s.c.id.in_(due[chunk:chunk + 500]), s.c.booked_consultation_id.is_(None),
                    s.c.released_at.is_(None)).values(released_at=now))
                released += result.rowcount
        return released

    async def slot_days(self, *, hospital_org_ids: Iterable[int] | None, start: dt.datetime, end: dt.datetime,
                        tz: ZoneInfo) -> list[SlotDay]:
        """Per hospital, department and local day: published, reserved, booked and released counts."""
        s = t.slots
        query = sa.select(s.c.hospital_org_id, s.c.department, s.c.starts_at, s.c.reserved,
                          s.c.booked_consultation_id, s.c.released_at).where(
            s.c.starts_at >= start, s.c.starts_at < end)
        if hospital_org_ids is not None:
            query = query.where(s.c.hospital_org_id.in_(list(hospital_org_ids)))
        counts: dict[tuple[int, str, dt.date], list[int]] = {}
        async with self.engine.connect() as conn:
            result = await conn.stream(query)
            async for r in result:
                c = counts.setdefault((r.hospital_org_id, r.department, quota.local_day(r.starts_at, tz)), [0] * 4)
                c[0] += 1
                if r.reserved:
                    c[1] += 1
                    c[2] += r.booked_consultation_id is not None
                    c[3] += r.released_at is not None
        return [SlotDay(k[0], k[1], k[2], *v) for k, v in sorted(counts.items())]

    # -- referrals -----------------------------------------------------------------------------------

    async def get_referral(self, referral_id: int) -> Referral | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(t.referrals).where(t.referrals.c.id == referral_id))).first()
            return await self._with_tasks(conn, row) if row else None

    async def list_referrals(self, *, consultation_id: int | None = None, to_org_id: int | None = None,
                             direction: str | None = None, created_by: int | None = None, open_only: bool = False,
                             limit: int = 200) -> list[Referral]:
        r = t.referrals
        query = sa.select(r).order_by(r.c.id.desc()).limit(limit)
        if created_by is not None:
            query = query.where(r.c.created_by == created_by)
        if consultation_id is not None:
            query = query.where(r.c.consultation_id == consultation_id)
        if to_org_id is not None:
            query = query.where(r.c.to_org_id == to_org_id)
        if direction:
            query = query.where(r.c.direction == direction)
        if open_only:
            query = query.where(r.c.closed_at.is_(None))
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
            return [await self._with_tasks(conn, row) for row in rows]

    async def _with_tasks(self, conn: AsyncConnection, row: Any) -> Referral:
        k = t.referral_tasks
        tasks = (await conn.execute(sa.select(k).where(k.c.referral_id == row.id).order_by(k.c.id))).all()
        return Referral(
            row.id, row.consultation_id, row.direction, row.from_org_id, row.to_org_id, row.department, row.slot_id,
            row.priority, row.care_plan, row.status, row.outcome, row.created_by, row.created_at, row.closed_at,
            tuple(ReferralTask(x.id, x.referral_id, x.text, x.due_date, x.done_at, x.done_by) for x in tasks))

    async def complete_referral_task(self, referral_id: int, task_id: int, user_id: int, *, now: dt.datetime) -> bool:
        k = t.referral_tasks
        async with self._tx() as conn:
            ref = (await conn.execute(sa.select(t.referrals).where(t.referrals.c.id == referral_id))).first()
            if ref is None:
                raise TelehealthError(ErrorCode.not_found, "referral {id} does not exist", id=referral_id)
            if ref.closed_at is not None:
                raise TelehealthError(ErrorCode.invalid_transition, "the referral is closed")
            result = await conn.execute(k.update().where(k.c.id == task_id, k.c.referral_id == referral_id,
                                                         k.c.done_at.is_(None)).values(done_at=now, done_by=user_id))
            if result.rowcount:
                await conn.execute(t.events.insert().values(
                    consultation_id=ref.consultation_id, kind="referral_task_done", actor_id=user_id, at=now,
                    data={"referral": referral_id, "task": task_id}))
                return True
            exists = (await conn.execute(sa.select(k.c.id).where(k.c.id == task_id, k.c.referral_id == referral_id)))
            if exists.first() is None:
                raise TelehealthError(ErrorCode.not_found, "task {task} is not part of referral {referral}",
                                      task=task_id, referral=referral_id)
        return False

    async def close_referral(self, referral_id: int, outcome: str, user_id: int, *, now: dt.datetime) -> Referral:
        """The receiving clinic records the outcome: the loop is closed for the referrer."""
        r = t.referrals
        async with self._tx() as conn:
            result = await conn.execute(r.update().where(r.c.id == referral_id, r.c.closed_at.is_(None))
                                        .values(outcome=outcome, status="closed", closed_at=now))
            row = (await conn.execute(sa.select(r).where(r.c.id == referral_id))).first()
            if row is None:
                raise TelehealthError(ErrorCode.not_found, "referral {id} does not exist", id=referral_id)
            if result.rowcount != 1:
                raise TelehealthError(ErrorCode.invalid_transition, "the referral is already closed")
            await conn.execute(t.events.insert().values(
                consultation_id=row.consultation_id, kind="referral_closed", actor_id=user_id, at=now,
                data={"referral": referral_id}))
            return await self._with_tasks(conn, row)

    # -- pre-call connection checks -------------------------------------------------------------------

    async def insert_precheck(self, check_id: str, org_id: int, user_id: int, now: dt.datetime) -> None:
        async with self._tx() as conn:
            await conn.execute(t.precheck_results.insert().values(id=check_id, org_id=org_id, user_id=user_id,
                                                                  started_at=now))

    async def set_precheck_uplink(self, check_id: str, uplink: dict[str, Any]) -> None:
        p = t.precheck_results
        async with self._tx() as conn:
            await conn.execute(p.update().where(p.c.id == check_id).values(uplink=uplink))

    async def finish_precheck(self, check_id: str, *, downlink: dict[str, Any], verdict: str, cause: str,
                              now: dt.datetime) -> None:
        p = t.precheck_results
        async with self._tx() as conn:
            await conn.execute(p.update().where(p.c.id == check_id).values(
                downlink=downlink, verdict=verdict, cause=cause, finished_at=now))

    async def get_precheck(self, check_id: str) -> dict[str, Any] | None:
        p = t.precheck_results
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(p).where(p.c.id == check_id))).first()
        return dict(row._mapping) if row else None

    async def list_prechecks(self, *, org_ids: Iterable[int] | None, limit: int = 200) -> list[dict[str, Any]]:
        """Finished checks, newest first."""
        p = t.precheck_results
        query = sa.select(p).where(p.c.finished_at.is_not(None)).order_by(p.c.finished_at.desc()).limit(limit)
        if org_ids is not None:
            query = query.where(p.c.org_id.in_(list(org_ids)))
        async with self._tx() as conn:
            return [dict(r._mapping) for r in (await conn.execute(query)).all()]

    # -- senior-doctor coverage ----------------------------------------------------------------------

    async def record_presence_day(self, user_id: int, day: dt.date, at: dt.datetime) -> bool:
        """Note that a specialist was online for consultations on a local day; True if newly noted."""
        p = t.presence_days
        try:
            async with self._tx() as conn:
                if (await conn.execute(sa.select(p.c.user_id).where(p.c.user_id == user_id,
                                                                    p.c.day == day))).first():
                    return False
                await conn.execute(p.insert().values(user_id=user_id, day=day, first_at=at))
        except IntegrityError:
            return False  # another node noted it first
        return True

    async def list_presence_days(self, start: dt.date, end: dt.date) -> list[tuple[int, dt.date]]:
        """(specialist, local day) pairs with start <= day < end."""
        p = t.presence_days
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(p.c.user_id, p.c.day).where(p.c.day >= start, p.c.day < end))).all()
        return [(r.user_id, r.day) for r in rows]

    async def insert_duty_days(self, user_id: int, org_id: int, days: Iterable[dt.date], *, created_by: int | None,
                               now: dt.datetime) -> int:
        """Record a clinician's duty days at an institution; days already recorded are skipped."""
        d = t.duty_days
        wanted = sorted(set(days))
        async with self._tx() as conn:
            have = {r.day for r in await conn.execute(sa.select(d.c.day).where(
                d.c.user_id == user_id, d.c.org_id == org_id, d.c.day.in_(wanted)))}
            rows = [{"user_id": user_id, "org_id": org_id, "day": day, "created_by": created_by, "created_at": now}
                    for day in wanted if day not in have]
            if rows:
                await conn.execute(d.insert(), rows)
        return len(rows)

    async def list_duty_days(self, *, org_ids: Iterable[int] | None, start: dt.date,
                             end: dt.date) -> list[DutyDay]:
        d = t.duty_days
        query = sa.select(d).where(d.c.day >= start, d.c.day < end).order_by(d.c.day, d.c.org_id, d.c.user_id)
        if org_ids is not None:
            query = query.where(d.c.org_id.in_(list(org_ids)))
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [DutyDay(r.id, r.user_id, r.org_id, r.day) for r in rows]

    async def delete_duty_day(self, duty_id: int, org_ids: Iterable[int] | None) -> bool:
        d = t.duty_days
        query = d.delete().where(d.c.id == duty_id)
        if org_ids is not None:
            query = query.where(d.c.org_id.in_(list(org_ids)))
        async with self._tx() as conn:
            res = await conn.execute(query)
        return bool(res.rowcount)

    async def statistics_rows(self, *, alliance_id: int | None, start: dt.datetime,
                              end: dt.datetime) -> tuple[list[Consultation], list[Event], list[CallSession]]:
        """Consultations asked for in [start, end) within an alliance, with their events and call sessions:
        what the policy statistics are computed from."""
        c, o = t.consultations, t.organisations
        query = sa.select(c).where(c.c.created_at >= start, c.c.created_at < end).order_by(c.c.id)
        if alliance_id is not None:
            query = query.where(c.c.clinic_org_id.in_(sa.select(o.c.id).where(o.c.alliance_id == alliance_id)))
        async with self._tx() as conn:
            consultations = [_consultation(r) for r in (await conn.execute(query)).all()]
            ids = [x.id for x in consultations]
            events: list[Event] = []
            sessions: list[CallSession] = []
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                e = t.events
                events += [Event(r.id, r.consultation_id, r.session_id, r.kind, r.actor_id, r.at, dict(r.data or {}))
                           for r in await conn.execute(sa.select(e).where(
                               e.c.consultation_id.in_(chunk), e.c.kind != "quality").order_by(e.c.id))]
                cs = t.call_sessions
                sessions += [_call_session(r) for r in await conn.execute(
                    sa.select(cs).where(cs.c.consultation_id.in_(chunk)).order_by(cs.c.id))]
        return consultations, events, sessions


class _Row:
    """Attribute access over a mapping, in the shape of a result row."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def _new_id(result: Any) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


@contextmanager
def _unavailable_on_connectivity() -> Iterator[None]:
    """A database that cannot be reached becomes `StoreUnavailable`; every other error passes unchanged."""
    try:
        yield
    except (DBAPIError, OSError, TimeoutError) as exc:
        if isinstance(exc, DBAPIError) and (isinstance(exc, IntegrityError) or (
                not exc.connection_invalidated and not _is_connectivity(exc))):
            raise
        raise StoreUnavailable(type(exc).__name__) from exc


def _is_connectivity(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    return any(word in text for word in (
        "connection", "connect", "could not", "terminat", "closed", "refused", "timeout", "shutdown",
        "database is locked", "unable to open"))
