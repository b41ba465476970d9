"""The durable tables. Migrations in records/migrations create exactly these."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite as on PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC time")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        stamp: dt.datetime = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        if stamp.tzinfo is None:
            return stamp.replace(tzinfo=dt.UTC)
        return stamp.astimezone(dt.UTC)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

alliances = sa.Table(
    "alliances", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("name_zh", sa.String(200), nullable=False, server_default=""),
    # county_community (医共体) or city_group (医疗集团)
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("region", sa.String(200), nullable=False, server_default=""),
    # The alliance's rule for the hospitals that do not lead it: their reserved share of outpatient slots in
    # percent, unless set per hospital. NULL: no rule.
    sa.Column("member_share_pct", sa.Integer, nullable=True),
)

organisations = sa.Table(
    "organisations", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("name_zh", sa.String(200), nullable=False, server_default=""),
    sa.Column("level", sa.String(40), nullable=False),
    sa.Column("alliance_id", sa.Integer, sa.ForeignKey("alliances.id"), nullable=True, index=True),
    # Leads an alliance: at least 20 % of its outpatient slots reserved for the grassroots.
    sa.Column("leads_alliance", sa.Boolean, nullable=False, server_default=sa.false()),
    # Its alliance is a tightly-knit city medical group pilot: its lead reserves one third instead of 20 %
    # (the flag counts only on the lead).
    sa.Column("city_group_pilot", sa.Boolean, nullable=False, server_default=sa.false()),
    # Reserved share of outpatient slots in percent, set by the administrator; NULL: the alliance's rule
    # for its members, else the policy floor (see records/quota.py).
    sa.Column("reserved_share_pct", sa.Integer, nullable=True),
    sa.Column("region", sa.String(200), nullable=False, server_default=""),
)

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(80), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(30), nullable=False),
    sa.Column("organisation_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=True, index=True),
    sa.Column("title", sa.String(30), nullable=True),
    # Comma-separated specialty codes (see domain.SPECIALTIES).
    sa.Column("specialties", sa.String(400), nullable=False, server_default=""),
    sa.Column("language", sa.String(10), nullable=False, server_default="zh_CN"),
    # An administrator with no organisation and this flag sees every alliance.
    sa.Column("is_system_admin", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

web_sessions = sa.Table(
    "web_sessions", metadata,
    # HMAC of the cookie value under the server secret: a copy of this table opens no session.
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

api_tokens = sa.Table(
    "api_tokens", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("label", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
)

second_factors = sa.Table(
    "second_factors", metadata,
    # One authenticator app per account (TOTP, RFC 6238).
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
    # The shared secret, base32. The server must compute codes from it, so it cannot be hashed.
    sa.Column("secret", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # NULL until a first code from the app confirms the enrolment.
    sa.Column("enrolled_at", UTCDateTime, nullable=True),
    # The 30-second step of the last code accepted: a code is good once, and no older one after it.
    sa.Column("last_step", sa.BigInteger, nullable=True),
)

recovery_codes = sa.Table(
    "recovery_codes", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
    # argon2 hash: the codes are shown once and a copy of this table opens nothing.
    sa.Column("code_hash", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("used_at", UTCDateTime, nullable=True),
)

agreements = sa.Table(
    "agreements", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # The grassroots institution (inviting party) and the hospital (invited party).
    sa.Column("clinic_org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False, index=True),
    sa.Column("hospital_org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False, index=True),
    sa.Column("valid_from", UTCDateTime, nullable=False),
    sa.Column("valid_to", UTCDateTime, nullable=True),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # An invitation until both sides' administrators approved it (telehealth.domain.AgreementState); only
    # one in effect routes consultations. The default is the state that routes nothing.
    sa.Column("state", sa.String(20), nullable=False, server_default="proposed"),
    sa.Column("clinic_approved_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
    sa.Column("clinic_approved_at", UTCDateTime, nullable=True),
    sa.Column("hospital_approved_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
    sa.Column("hospital_approved_at", UTCDateTime, nullable=True),
    # Who declined or ended it, when and why.
    sa.Column("closed_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
    sa.Column("closed_at", UTCDateTime, nullable=True),
    sa.Column("closed_reason", sa.String(500), nullable=False, server_default=""),
)

patients = sa.Table(
    "patients", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("organisation_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("sex", sa.String(10), nullable=False),
    sa.Column("birth_year", sa.Integer, nullable=False),
    sa.Column("local_id", sa.String(100), nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

consultations = sa.Table(
    "consultations", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), nullable=False, index=True),
    sa.Column("clinic_org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False, index=True),
    sa.Column("requesting_doctor_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
    # The clinic doctor currently with the patient (hand-over changes it; events keep the history).
    sa.Column("accompanying_doctor_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("specialty", sa.String(60), nullable=False, index=True),
    sa.Column("urgency", sa.String(20), nullable=False),
    sa.Column("complex_case", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("requested_specialist_id", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
    sa.Column("min_title", sa.String(30), nullable=True),
    sa.Column("title_fallback", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("purpose", sa.Text, nullable=False, server_default=""),
    sa.Column("chief_complaint", sa.Text, nullable=False, server_default=""),
    sa.Column("history", sa.Text, nullable=False, server_default=""),
    sa.Column("consent_by", sa.String(20), nullable=True),  # patient | guardian | relative
    sa.Column("consent_name", sa.String(200), nullable=True),
    sa.Column("consent_relation", sa.String(100), nullable=True),
    sa.Column("consent_at", UTCDateTime, nullable=True),
    sa.Column("state", sa.String(20), nullable=False, index=True),
    sa.Column("assigned_specialist_id", sa.Integer, sa.ForeignKey("users.id"), nullable=True, index=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", UTCDateTime, nullable=False, index=True),
    sa.Column("queued_at", UTCDateTime, nullable=True),
    # When it first entered the queue: set once, never reset, so a request that goes back to the queue
    # (declined, rung out, given back, rebuilt after a restart) keeps its place (docs/matching.md).
    sa.Column("first_queued_at", UTCDateTime, nullable=True),
    sa.Column("offered_at", UTCDateTime, nullable=True),
    sa.Column("accepted_at", UTCDateTime, nullable=True),
    sa.Column("in_call_at", UTCDateTime, nullable=True),
    sa.Column("ended_at", UTCDateTime, nullable=True),
    sa.Column("signed_at", UTCDateTime, nullable=True),
    sa.Column("closed_at", UTCDateTime, nullable=True),
    sa.Column("cancelled_at", UTCDateTime, nullable=True),
    sa.Column("expired_at", UTCDateTime, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # The inviting party decides: accept the advice, adapt it, or refer as suggested (then closed).
    sa.Column("clinic_decision", sa.String(30), nullable=True),
    sa.Column("clinic_decision_note", sa.Text, nullable=False, server_default=""),
    sa.Column("decided_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
)

call_sessions = sa.Table(
    "call_sessions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("consultation_id", sa.Integer, sa.ForeignKey("consultations.id"), nullable=False, index=True),
    sa.Column("clinic_user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("specialist_user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("connected_at", UTCDateTime, nullable=True),
    sa.Column("ended_at", UTCDateTime, nullable=True),
    sa.Column("end_reason", sa.String(30), nullable=True),
)

# Append-only: no code path updates or deletes a row here.
events = sa.Table(
    "events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("consultation_id", sa.Integer, sa.ForeignKey("consultations.id"), nullable=False, index=True),
    sa.Column("session_id", sa.Integer, sa.ForeignKey("call_sessions.id"), nullable=True, index=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("actor_id", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
    sa.Column("at", UTCDateTime, nullable=False),
    # Small JSON object with technical detail only (states, reasons, quality figures): never patient data.
    sa.Column("data", sa.JSON, nullable=False, server_default="{}"),
)

# A signed note and every addendum are immutable in the database itself, whatever client writes to it: triggers
# (migrations 0002 and 0009) refuse UPDATE, DELETE, INSERT OR REPLACE and TRUNCATE on SQLite and PostgreSQL.
notes = sa.Table(
    "notes", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("consultation_id", sa.Integer, sa.ForeignKey("consultations.id"), nullable=False, unique=True),
    sa.Column("author_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("subjective", sa.Text, nullable=False, server_default=""),
    sa.Column("objective", sa.Text, nullable=False, server_default=""),
    sa.Column("assessment", sa.Text, nullable=False, server_default=""),
    sa.Column("diagnoses", sa.JSON, nullable=False, server_default="[]"),
    sa.Column("plan", sa.Text, nullable=False, server_default=""),
    sa.Column("disposition", sa.JSON, nullable=False, server_default="{}"),
    sa.Column("store_and_forward", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("draft_saved_at", UTCDateTime, nullable=False),
    sa.Column("signed_at", UTCDateTime, nullable=True),
    sa.Column("signed_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
)

addenda = sa.Table(
    "addenda", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("note_id", sa.Integer, sa.ForeignKey("notes.id"), nullable=False, index=True),
    sa.Column("author_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("signed_at", UTCDateTime, nullable=False),
)

slots = sa.Table(
    "slots", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("hospital_org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False, index=True),
    sa.Column("department", sa.String(60), nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=False, index=True),
    sa.Column("duration_min", sa.Integer, nullable=False, server_default="30"),
    # Building, floor, room: where the patient goes.
    sa.Column("location", sa.String(200), nullable=False, server_default=""),
    sa.Column("reserved", sa.Boolean, nullable=False),
    sa.Column("released_at", UTCDateTime, nullable=True),
    sa.Column("booked_consultation_id", sa.Integer, sa.ForeignKey("consultations.id"), nullable=True,
              unique=True),
    sa.Column("booked_at", UTCDateTime, nullable=True),
    # One slot per department and start time: a re-imported timetable adds nothing twice.
    sa.Index("ix_slots_department_day", "hospital_org_id", "department", "starts_at", unique=True),
)

# Inpatient beds a hospital ward makes available on a day, one row per bed; reserved ones are held for patients
# referred up from grassroots institutions (a city medical group pilot's lead: at least one quarter).
beds = sa.Table(
    "beds", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("hospital_org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False, index=True),
    sa.Column("ward", sa.String(60), nullable=False),
    sa.Column("day", sa.Date, nullable=False, index=True),
    # The bed's number in the ward's count for that day (1, 2, ...): a re-published count adds only the rest.
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("reserved", sa.Boolean, nullable=False),
    sa.Column("released_at", UTCDateTime, nullable=True),
    sa.Column("booked_consultation_id", sa.Integer, sa.ForeignKey("consultations.id"), nullable=True,
              unique=True),
    sa.Column("booked_at", UTCDateTime, nullable=True),
    sa.Index("ix_beds_ward_day", "hospital_org_id", "ward", "day", "number", unique=True),
)

# Up (上转, to a hospital, usually with a reserved slot) or down (下转, to a member unit with a care plan).
referrals = sa.Table(
    "referrals", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("consultation_id", sa.Integer, sa.ForeignKey("consultations.id"), nullable=False, index=True),
    sa.Column("direction", sa.String(10), nullable=False),
    sa.Column("from_org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False),
    sa.Column("to_org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False, index=True),
    sa.Column("department", sa.String(60), nullable=False, server_default=""),
    sa.Column("slot_id", sa.Integer, sa.ForeignKey("slots.id"), nullable=True),
    # A referral up for admission: the reserved inpatient bed booked for it.
    sa.Column("bed_id", sa.Integer, sa.ForeignKey("beds.id"), nullable=True),
    # Referred from the grassroots: priority for visit, examination and admission.
    sa.Column("priority", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("care_plan", sa.Text, nullable=False, server_default=""),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("outcome", sa.Text, nullable=False, server_default=""),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("closed_at", UTCDateTime, nullable=True),
)

# The follow-up a refer-down care plan asks of the receiving clinic.
referral_tasks = sa.Table(
    "referral_tasks", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("referral_id", sa.Integer, sa.ForeignKey("referrals.id"), nullable=False, index=True),
    sa.Column("text", sa.String(500), nullable=False),
    sa.Column("due_date", sa.Date, nullable=True),
    sa.Column("done_at", UTCDateTime, nullable=True),
    sa.Column("done_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
)

attachments = sa.Table(
    "attachments", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("consultation_id", sa.Integer, sa.ForeignKey("consultations.id"), nullable=False, index=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("content_type", sa.String(100), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    # `clinical` (test results, photos, ECG) or `consent` (the signed consent: signature or form).
    sa.Column("kind", sa.String(20), nullable=False, server_default="clinical"),
    sa.Column("uploaded_by", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Append-only and hash-chained: each row carries the hash of the one before it.
audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
    sa.Column("actor_id", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
    sa.Column("action", sa.String(60), nullable=False),
    sa.Column("target", sa.String(120), nullable=False, server_default=""),
    sa.Column("remote", sa.String(80), nullable=False, server_default=""),
    sa.Column("detail", sa.JSON, nullable=False, server_default="{}"),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # 1: plain SHA-256 (entries written before the audit key); 2: HMAC-SHA256 with the audit key.
    sa.Column("hash_version", sa.SmallInteger, nullable=False, server_default="1"),
    # The entry's number in the chain (1, 2, ...), which the anchor names; empty for version 1 entries.
    sa.Column("seq", sa.Integer, nullable=True, index=True, unique=True),
)

# Senior-doctor coverage of the grassroots: the days a clinician was on outpatient duty at an institution
# (recorded by administrators) ...
duty_days = sa.Table(
    "duty_days", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False, index=True),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("user_id", "org_id", "day", name="uq_duty_days_user_org_day"),
)

# ... and the local days on which a specialist was online for consultations (presence not `away`),
# noted by the node they were connected to.
presence_days = sa.Table(
    "presence_days", metadata,
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("first_at", UTCDateTime, nullable=False),
)

# Pre-call connection checks, per clinic: what the link carried each time (no patient data).
precheck_results = sa.Table(
    "precheck_results", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False, index=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    # The server peer's measurements of the uplink (JSON), once the worker reports them.
    sa.Column("uplink", sa.JSON, nullable=True),
    # The browser's measurements of the downlink and what it knows (camera, candidate types).
    sa.Column("downlink", sa.JSON, nullable=True),
    sa.Column("verdict", sa.String(20), nullable=True),
    sa.Column("cause", sa.String(40), nullable=False, server_default=""),
)

# Test results in a patient's record (laboratory values, imaging and ECG reports), recorded at the clinic or an
# upper hospital or imported from a FHIR Bundle; they travel with a referral. Never changed once written.
results = sa.Table(
    "results", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), nullable=False, index=True),
    # A code of records/result_types.py (LOINC).
    sa.Column("type_code", sa.String(20), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("unit", sa.String(20), nullable=False, server_default=""),
    # A report's findings and conclusion, or a remark on a value.
    sa.Column("text", sa.Text, nullable=False, server_default=""),
    # The local day the test was done, from which its validity counts.
    sa.Column("performed_on", sa.Date, nullable=False),
    # The institution that did the test: one known here, else only its name (a result imported from outside).
    sa.Column("source_org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=True),
    sa.Column("source_name", sa.String(200), nullable=False, server_default=""),
    sa.Column("consultation_id", sa.Integer, sa.ForeignKey("consultations.id"), nullable=True),
    sa.Column("origin", sa.String(20), nullable=False, server_default="recorded"),  # recorded | imported
    sa.Column("recorded_by", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
)

# An alliance's mutually recognised items (检查检验结果互认): the test types whose results its member units accept
# from one another without repeating them, each for so many days after the test.
recognised_items = sa.Table(
    "recognised_items", metadata,
    sa.Column("alliance_id", sa.Integer, sa.ForeignKey("alliances.id"), primary_key=True),
    sa.Column("type_code", sa.String(20), primary_key=True),
    sa.Column("validity_days", sa.Integer, nullable=False),
    sa.Column("updated_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# The hours a specialist publishes for booked consultations (预约会诊): a clinic books a time inside them.
consultation_hours = sa.Table(
    "consultation_hours", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("specialist_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("hospital_org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False, index=True),
    sa.Column("department", sa.String(60), nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=False, index=True),
    sa.Column("ends_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("withdrawn_at", UTCDateTime, nullable=True),
)

# A department's remote-consultation desk (远程会诊中心): accounts an administrator names, which publish hours
# for the department's specialists and answer the clinics' requested windows.
consultation_desks = sa.Table(
    "consultation_desks", metadata,
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("hospital_org_id", sa.Integer, sa.ForeignKey("organisations.id"), primary_key=True),
    sa.Column("department", sa.String(60), primary_key=True),
    sa.Column("granted_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
    sa.Column("granted_at", UTCDateTime, nullable=False),
)

# A booked consultation: the consultation (the same referral record) and when, with whom, it is held.
appointments = sa.Table(
    "appointments", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("consultation_id", sa.Integer, sa.ForeignKey("consultations.id"), nullable=False, unique=True),
    sa.Column("clinic_org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False, index=True),
    sa.Column("hospital_org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False, index=True),
    sa.Column("department", sa.String(60), nullable=False),
    # Empty while a requested window waits for the desk's answer.
    sa.Column("specialist_id", sa.Integer, sa.ForeignKey("users.id"), nullable=True, index=True),
    sa.Column("starts_at", UTCDateTime, nullable=True, index=True),
    sa.Column("duration_min", sa.Integer, nullable=False),
    # The window a clinic asked for, when it asked for one.
    sa.Column("window_start", UTCDateTime, nullable=True),
    sa.Column("window_end", UTCDateTime, nullable=True),
    # requested | proposed | booked | started | no_show | cancelled
    sa.Column("status", sa.String(20), nullable=False, index=True),
    # The reason given with the last proposal, reschedule or cancellation.
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("booked_at", UTCDateTime, nullable=True),
    sa.Column("reminded_day_at", UTCDateTime, nullable=True),
    sa.Column("reminded_soon_at", UTCDateTime, nullable=True),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("closed_at", UTCDateTime, nullable=True),
    sa.Column("reschedules", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
)
