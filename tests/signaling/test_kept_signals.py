"""Signals sent to a participant before its first join: kept and handed over with the join, never lost when
the join lands in the middle of keeping one."""

from __future__ import annotations

from telehealth.matching.memory import MemoryBroker
from telehealth.signaling.sessions import keep_for_pending, kept_key, marker_key

SESSION, PEER = 7, 3
EVENT = {"session_id": SESSION, "kind": "offer", "payload": {"sdp": "v=0"}, "from": 2, "id": "a1"}


async def join(broker: MemoryBroker) -> list[str]:
    """What `SessionManager.join` does with the broker, in its order: marker live, then take the kept list."""
    await broker.put(marker_key(SESSION, PEER), "live", 60)
    return await broker.take_all(kept_key(SESSION, PEER))


async def test_a_signal_to_a_pending_participant_is_kept_for_its_join() -> None:
    broker = MemoryBroker()
    await broker.put(marker_key(SESSION, PEER), "pending", 60)
    assert await keep_for_pending(broker, SESSION, PEER, EVENT, 60) is True
    assert len(await join(broker)) == 1


async def test_a_signal_to_a_joined_or_dropped_participant_is_sent() -> None:
    broker = MemoryBroker()
    for state in ("live", "dropped", None):
        if state is None:
            await broker.delete(marker_key(SESSION, PEER))
        else:
            await broker.put(marker_key(SESSION, PEER), state, 60)
        assert await keep_for_pending(broker, SESSION, PEER, EVENT, 60) is False
        assert await broker.take_all(kept_key(SESSION, PEER)) == []


class JoinWhileKeeping(MemoryBroker):
    """The participant's join lands between keeping a signal and looking at its marker again."""

    def __init__(self) -> None:
        super().__init__()
        self.taken: list[str] | None = None

    async def append(self, key: str, value: str, ttl: float) -> None:
        if self.taken is None:
            self.taken = await join(self)  # before the signal is in the list: the join takes nothing
        await super().append(key, value, ttl)


async def test_a_join_in_the_middle_of_keeping_still_gets_the_signal() -> None:
    broker = JoinWhileKeeping()
    await broker.put(marker_key(SESSION, PEER), "pending", 60)
    # The join took the list before the signal was added: the second look sees the marker live, so it is sent.
    assert await keep_for_pending(broker, SESSION, PEER, EVENT, 60) is False
    assert broker.taken == []
