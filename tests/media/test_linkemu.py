"""The emulated weak link: a UDP echo behind the relay sees the profile's delay, loss and rate."""

from __future__ import annotations

import asyncio
from typing import Any

from telehealth.media.linkemu import PROFILES, LinkRelay, Profile


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


class Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[tuple[int, float]] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.append((int.from_bytes(data[:4], "big"), asyncio.get_running_loop().time()))


async def round_trips(profile: Profile, count: int, size: int, gap: float) -> tuple[Client, list[float], Any]:
    loop = asyncio.get_running_loop()
    echo_transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    relay = await LinkRelay.start(profile, echo_transport.get_extra_info("sockname"))
    transport, client = await loop.create_datagram_endpoint(Client, local_addr=("127.0.0.1", 0))
    sent_at = []
    for i in range(count):
        sent_at.append(loop.time())
        transport.sendto(i.to_bytes(4, "big") + bytes(size - 4), ("127.0.0.1", relay.port))
        await asyncio.sleep(gap)
    await asyncio.sleep(1.5)
    transport.close()
    echo_transport.close()
    relay.close()
    return client, sent_at, relay


async def test_delay_and_loss_as_the_profile_says() -> None:
    profile = Profile("test", delay_ms=60, jitter_ms=10, loss_pct=10)
    client, sent_at, relay = await round_trips(profile, 300, 100, 0.002)
    rtts = sorted((at - sent_at[i]) * 1000 for i, at in client.received)
    # Two crossings: 120 ms ± 20 ms, and (1 - 0.1)² of the datagrams come back.
    assert 95 <= rtts[len(rtts) // 2] <= 150, rtts[len(rtts) // 2]
    assert 0.7 <= len(client.received) / 300 <= 0.9, len(client.received)
    assert relay.up.dropped + relay.down.dropped > 20


async def test_the_rate_limit_holds() -> None:
    # 64 kbit/s and 1,000-byte datagrams: about 8 a second get through; a burst of 60 mostly queues or drops.
    profile = Profile("slow", rate_kbps=64, queue_ms=500)
    client, _, _ = await round_trips(profile, 60, 1000, 0.0)
    assert 3 <= len(client.received) <= 12, len(client.received)
    assert set(PROFILES) == {"good", "township", "village", "bad"}


async def test_the_relay_runs_as_a_process_of_its_own_and_reports_what_it_carried() -> None:
    import json
    import signal
    import sys

    loop = asyncio.get_running_loop()
    echo_transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    target = echo_transport.get_extra_info("sockname")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "telehealth.media.linkemu", "township", "--target", f"127.0.0.1:{target[1]}",
        stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("listening ")
        port = int(line.split()[1])
        transport, client = await loop.create_datagram_endpoint(Client, local_addr=("127.0.0.1", 0))
        for i in range(200):
            transport.sendto(i.to_bytes(4, "big") + bytes(196), ("127.0.0.1", port))
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.5)
        transport.close()
        proc.send_signal(signal.SIGTERM)
        out = (await asyncio.wait_for(proc.stdout.read(), 20)).decode()
        assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
        echo_transport.close()
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts["profile"] == "township"
    up, down = counts["up"], counts["down"]
    assert up["sent"] + up["lost"] + up["overflowed"] == 200
    assert down["sent"] + down["lost"] + down["overflowed"] == up["sent"]
    # About 1 % lost each way at random; all the echoes that left the link arrived.
    assert 190 <= len(client.received) == down["sent"]


async def test_the_relay_command_refuses_a_bad_target() -> None:
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "telehealth.media.linkemu", "village", "--target", "nowhere",
        stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 2 and b"host:port" in err


async def test_a_tcp_service_behind_the_same_line_answers_after_its_delay() -> None:
    from telehealth.media.linkemu import TcpDelay

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    relay = await TcpDelay.start(PROFILES["village"], server.sockets[0].getsockname()[:2])
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        loop = asyncio.get_running_loop()
        trips = []
        for i in range(3):
            started = loop.time()
            writer.write(b"ping %d\n" % i)
            await writer.drain()
            assert await asyncio.wait_for(reader.readline(), 5) == b"ping %d\n" % i
            trips.append(loop.time() - started)
        writer.close()
    finally:
        relay.close()
        server.close()
    # One way 150 ms each direction: a round trip of about 300 ms, in order and intact.
    assert all(0.29 <= t < 0.6 for t in trips), trips
