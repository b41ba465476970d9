"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import telehealth.records.schema

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('alliances',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('name_zh', sa.String(length=200), server_default='', nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('region', sa.String(length=200), server_default='', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alliances')),
    sa.UniqueConstraint('name', name=op.f('uq_alliances_name'))
    )
    op.create_table('organisations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('name_zh', sa.String(length=200), server_default='', nullable=False),
    sa.Column('level', sa.String(length=40), nullable=False),
    sa.Column('alliance_id', sa.Integer(), nullable=True),
    sa.Column('leads_alliance', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('city_group_pilot', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('reserved_share_pct', sa.Integer(), nullable=True),
    sa.Column('region', sa.String(length=200), server_default='', nullable=False),
    sa.ForeignKeyConstraint(['alliance_id'], ['alliances.id'], name=op.f('fk_organisations_alliance_id_alliances')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organisations')),
    sa.UniqueConstraint('name', name=op.f('uq_organisations_name'))
    )
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_organisations_alliance_id'), ['alliance_id'], unique=False)

    op.create_table('patients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('sex', sa.String(length=10), nullable=False),
    sa.Column('birth_year', sa.Integer(), nullable=False),
    sa.Column('local_id', sa.String(length=100), server_default='', nullable=False),
    sa.Column('created_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_patients_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patients'))
    )
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patients_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=80), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=30), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=True),
    sa.Column('title', sa.String(length=30), nullable=True),
    sa.Column('specialties', sa.String(length=400), server_default='', nullable=False),
    sa.Column('language', sa.String(length=10), server_default='zh_CN', nullable=False),
    sa.Column('is_system_admin', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_users_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_users_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('agreements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_org_id', sa.Integer(), nullable=False),
    sa.Column('hospital_org_id', sa.Integer(), nullable=False),
    sa.Column('valid_from', telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('valid_to', telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['clinic_org_id'], ['organisations.id'], name=op.f('fk_agreements_clinic_org_id_organisations')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_agreements_created_by_users')),
    sa.ForeignKeyConstraint(['hospital_org_id'], ['organisations.id'], name=op.f('fk_agreements_hospital_org_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agreements'))
    )
    with op.batch_alter_table('agreements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agreements_clinic_org_id'), ['clinic_org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agreements_hospital_org_id'), ['hospital_org_id'], unique=False)

    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=200), server_default='', nullable=False),
    sa.Column('created_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('target', sa.String(length=120), server_default='', nullable=False),
    sa.Column('remote', sa.String(length=80), server_default='', nullable=False),
    sa.Column('detail', sa.JSON(), server_default='{}', nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_audit_log_actor_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)

    op.create_table('consultations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('clinic_org_id', sa.Integer(), nullable=False),
    sa.Column('requesting_doctor_id', sa.Integer(), nullable=False),
    sa.Column('accompanying_doctor_id', sa.Integer(), nullable=False),
    sa.Column('specialty', sa.String(length=60), nullable=False),
    sa.Column('urgency', sa.String(length=20), nullable=False),
    sa.Column('complex_case', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('requested_specialist_id', sa.Integer(), nullable=True),
    sa.Column('min_title', sa.String(length=30), nullable=True),
    sa.Column('title_fallback', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('reason', sa.Text(), server_default='', nullable=False),
    sa.Column('purpose', sa.Text(), server_default='', nullable=False),
    sa.Column('chief_complaint', sa.Text(), server_default='', nullable=False),
    sa.Column('history', sa.Text(), server_default='', nullable=False),
    sa.Column('consent_by', sa.String(length=20), nullable=True),
    sa.Column('consent_name', sa.String(length=200), nullable=True),
    sa.Column('consent_relation', sa.String(length=100), nullable=True),
    sa.Column('consent_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('assigned_specialist_id', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('queued_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('offered_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('accepted_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('in_call_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('signed_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('expired_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['accompanying_doctor_id'], ['users.id'], name=op.f('fk_consultations_accompanying_doctor_id_users')),
    sa.ForeignKeyConstraint(['assigned_specialist_id'], ['users.id'], name=op.f('fk_consultations_assigned_specialist_id_users')),
    sa.ForeignKeyConstraint(['clinic_org_id'], ['organisations.id'], name=op.f('fk_consultations_clinic_org_id_organisations')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_consultations_patient_id_patients')),
    sa.ForeignKeyConstraint(['requested_specialist_id'], ['users.id'], name=op.f('fk_consultations_requested_specialist_id_users')),
    sa.ForeignKeyConstraint(['requesting_doctor_id'], ['users.id'], name=op.f('fk_consultations_requesting_doctor_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consultations'))
    )
    with op.batch_alter_table('consultations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consultations_assigned_specialist_id'), ['assigned_specialist_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consultations_clinic_org_id'), ['clinic_org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consultations_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_consultations_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consultations_requesting_doctor_id'), ['requesting_doctor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consultations_specialty'), ['specialty'], unique=False)
        batch_op.create_index(batch_op.f('ix_consultations_state'), ['state'], unique=False)

    op.create_table('web_sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_web_sessions_user_id_users')),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_web_sessions'))
    )
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_sessions_user_id'), ['user_id'], unique=False)

    op.create_table('attachments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('consultation_id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('uploaded_by', sa.Integer(), nullable=False),
    sa.Column('created_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['consultation_id'], ['consultations.id'], name=op.f('fk_attachments_consultation_id_consultations')),
    sa.ForeignKeyConstraint(['uploaded_by'], ['users.id'], name=op.f('fk_attachments_uploaded_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attachments'))
    )
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attachments_consultation_id'), ['consultation_id'], unique=False)

    op.create_table('call_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('consultation_id', sa.Integer(), nullable=False),
    sa.Column('clinic_user_id', sa.Integer(), nullable=False),
    sa.Column('specialist_user_id', sa.Integer(), nullable=False),
    sa.Column('started_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('connected_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sa.String(length=30), nullable=True),
    sa.ForeignKeyConstraint(['clinic_user_id'], ['users.id'], name=op.f('fk_call_sessions_clinic_user_id_users')),
    sa.ForeignKeyConstraint(['consultation_id'], ['consultations.id'], name=op.f('fk_call_sessions_consultation_id_consultations')),
    sa.ForeignKeyConstraint(['specialist_user_id'], ['users.id'], name=op.f('fk_call_sessions_specialist_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_sessions'))
    )
    with op.batch_alter_table('call_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_call_sessions_consultation_id'), ['consultation_id'], unique=False)

    op.create_table('notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('consultation_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('subjective', sa.Text(), server_default='', nullable=False),
    sa.Column('objective', sa.Text(), server_default='', nullable=False),
    sa.Column('assessment', sa.Text(), server_default='', nullable=False),
    sa.Column('diagnoses', sa.JSON(), server_default='[]', nullable=False),
    sa.Column('plan', sa.Text(), server_default='', nullable=False),
    sa.Column('disposition', sa.JSON(), server_default='{}', nullable=False),
    sa.Column('store_and_forward', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('draft_saved_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('signed_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('signed_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_notes_author_id_users')),
    sa.ForeignKeyConstraint(['consultation_id'], ['consultations.id'], name=op.f('fk_notes_consultation_id_consultations')),
    sa.ForeignKeyConstraint(['signed_by'], ['users.id'], name=op.f('fk_notes_signed_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notes')),
    sa.UniqueConstraint('consultation_id', name=op.f('uq_notes_consultation_id'))
    )
    op.create_table('slots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('hospital_org_id', sa.Integer(), nullable=False),
    sa.Column('department', sa.String(length=60), nullable=False),
    sa.Column('starts_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reserved', sa.Boolean(), nullable=False),
    sa.Column('released_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('booked_consultation_id', sa.Integer(), nullable=True),
    sa.Column('booked_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['booked_consultation_id'], ['consultations.id'], name=op.f('fk_slots_booked_consultation_id_consultations')),
    sa.ForeignKeyConstraint(['hospital_org_id'], ['organisations.id'], name=op.f('fk_slots_hospital_org_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_slots')),
    sa.UniqueConstraint('booked_consultation_id', name=op.f('uq_slots_booked_consultation_id'))
    )
    with op.batch_alter_table('slots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_slots_hospital_org_id'), ['hospital_org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_slots_starts_at'), ['starts_at'], unique=False)

    op.create_table('addenda',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('note_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('signed_at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_addenda_author_id_users')),
    sa.ForeignKeyConstraint(['note_id'], ['notes.id'], name=op.f('fk_addenda_note_id_notes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_addenda'))
    )
    with op.batch_alter_table('addenda', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_addenda_note_id'), ['note_id'], unique=False)

    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('consultation_id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('at', telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('data', sa.JSON(), server_default='{}', nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_events_actor_id_users')),
    sa.ForeignKeyConstraint(['consultation_id'], ['consultations.id'], name=op.f('fk_events_consultation_id_consultations')),
    sa.ForeignKeyConstraint(['session_id'], ['call_sessions.id'], name=op.f('fk_events_session_id_call_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_consultation_id'), ['consultation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_events_session_id'), ['session_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_session_id'))
        batch_op.drop_index(batch_op.f('ix_events_consultation_id'))

    op.drop_table('events')
    with op.batch_alter_table('addenda', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_addenda_note_id'))

    op.drop_table('addenda')
    with op.batch_alter_table('slots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_slots_starts_at'))
        batch_op.drop_index(batch_op.f('ix_slots_hospital_org_id'))

    op.drop_table('slots')
    op.drop_table('notes')
    with op.batch_alter_table('call_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_call_sessions_consultation_id'))

    op.drop_table('call_sessions')
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attachments_consultation_id'))

    op.drop_table('attachments')
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_sessions_user_id'))

    op.drop_table('web_sessions')
    with op.batch_alter_table('consultations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consultations_state'))
        batch_op.drop_index(batch_op.f('ix_consultations_specialty'))
        batch_op.drop_index(batch_op.f('ix_consultations_requesting_doctor_id'))
        batch_op.drop_index(batch_op.f('ix_consultations_patient_id'))
        batch_op.drop_index(batch_op.f('ix_consultations_created_at'))
        batch_op.drop_index(batch_op.f('ix_consultations_clinic_org_id'))
        batch_op.drop_index(batch_op.f('ix_consultations_assigned_specialist_id'))

    op.drop_table('consultations')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))

    op.drop_table('audit_log')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_id'))

    op.drop_table('api_tokens')
    with op.batch_alter_table('agreements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agreements_hospital_org_id'))
        batch_op.drop_index(batch_op.f('ix_agreements_clinic_org_id'))

    op.drop_table('agreements')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_organisation_id'))

    op.drop_table('users')
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patients_organisation_id'))

    op.drop_table('patients')
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_organisations_alliance_id'))

    op.drop_table('organisations')
    op.drop_table('alliances')

