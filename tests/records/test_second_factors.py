"""The second factors' store on SQLite and PostgreSQL: a waiting enrolment, its confirmation, a code's step taken
once, recovery codes spent once, and the reset."""

from __future__ import annotations

from telehealth.domain import Role
from telehealth.records.store import Store
from tests.conftest import utc

NOW = utc(2026, 12, 3, 8, 0)
# The 30-second step of NOW, as an authenticator app counts them.
STEP = int(NOW.timestamp()) // 30


async def test_enrolment_codes_and_reset(store: Store) -> None:
    user = await store.insert_user("doc", "x", "Doc", Role.admin, organisation_id=None, now=NOW, is_system_admin=True)
    assert await store.get_second_factor(user.id) is None
    await store.insert_second_factor(user.id, "A" * 32, now=NOW)
    await store.insert_second_factor(user.id, "B" * 32, now=NOW)  # a new one replaces the unconfirmed one
    waiting = await store.get_second_factor(user.id)
    assert waiting is not None and waiting.secret == "B" * 32 and not waiting.enrolled
    # No code is taken before the enrolment is confirmed.
    assert not await store.update_second_factor_step(user.id, STEP)
    assert await store.update_second_factor_enrolled(user.id, STEP, now=NOW)
    assert not await store.update_second_factor_enrolled(user.id, STEP, now=NOW)
    # The confirming code's step is spent; so is any earlier one. The next is good once.
    assert not await store.update_second_factor_step(user.id, STEP)
    assert not await store.update_second_factor_step(user.id, STEP - 1)
    assert await store.update_second_factor_step(user.id, STEP + 1)
    assert not await store.update_second_factor_step(user.id, STEP + 1)
    await store.insert_recovery_codes(user.id, ["h1", "h2", "h3"], now=NOW)
    await store.insert_recovery_codes(user.id, ["n1", "n2"], now=NOW)  # in place of the old set
    hashes = await store.list_recovery_code_hashes(user.id)
    assert [h for _, h in hashes] == ["n1", "n2"]
    assert await store.update_recovery_code_used(hashes[0][0], now=NOW)
    assert not await store.update_recovery_code_used(hashes[0][0], now=NOW)
    factor = await store.get_second_factor(user.id)
    assert factor is not None and factor.enrolled and factor.last_step == STEP + 1 and factor.recovery_codes_left == 1
    assert await store.delete_second_factor(user.id)
    assert not await store.delete_second_factor(user.id)
    assert await store.get_second_factor(user.id) is None and await store.list_recovery_code_hashes(user.id) == []
