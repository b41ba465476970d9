"""A weak link on loopback: a userspace UDP relay that delays, jitters, drops and rate-limits datagrams in both
directions, for the field benchmark and tests (kernel `netem` is not always available).

Put it between WebRTC clients and the TURN server (clients are given the relay's port as their TURN
address and the call is forced through TURN), so every media packet crosses the emulated link.

    relay = await LinkRelay.start(Profile.named("village"), target=("127.0.0.1", 3478))
    ... turn:127.0.0.1:{relay.port} ...
    relay.close()

Or as a process of its own, so the emulated link keeps time whatever else the machine does:

    python -m telehealth.media.linkemu village --target 127.0.0.1:3478 [--port 0]

prints `listening <port>` once it is ready (with `--tcp-target host:port`, first `tcp <port>`: the web server
behind the same delay) and, when stopped (SIGTERM or SIGINT), one JSON line with what it
carried and dropped in each direction.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
from dataclasses import dataclass
from typing import Any

Address = tuple[str, int]


@dataclass(frozen=True)
class Profile:
    """A link: rate in kbit/s (0: unlimited), one-way delay and jitter in ms, loss in percent."""

    name: str
    rate_kbps: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    # The bottleneck's buffer: packets beyond it are dropped (as a router's queue would).
    queue_ms: float = 400.0

    @staticmethod
    def named(name: str) -> Profile:
        return PROFILES[name]


# The named links: a round trip is twice the one-way delay.
PROFILES = {
    "good": Profile("good"),
    "township": Profile("township", rate_kbps=1000, delay_ms=40, jitter_ms=5, loss_pct=1),
    "village": Profile("village", rate_kbps=256, delay_ms=150, jitter_ms=20, loss_pct=3),
    "bad": Profile("bad", rate_kbps=96, delay_ms=300, jitter_ms=50, loss_pct=8),
}


class _Direction:
    """One direction of the link: a token bucket for the rate, then delay and loss, in order."""

    def __init__(self, profile: Profile, rng: random.Random) -> None:
        self.profile = profile
        self.rng = rng
        self.busy_until = 0.0  # when the bottleneck finishes sending what is queued
        self.sent = 0
        self.lost = 0  # dropped at random (the profile's loss)
        self.overflowed = 0  # dropped because the bottleneck's queue was full

    def schedule(self, size: int, now: float) -> float | None:
        """When this datagram leaves the link (loop time), or None if it is lost."""
        p = self.profile
        if p.loss_pct and self.rng.random() * 100 < p.loss_pct:
            self.lost += 1
            return None
        depart = now
        if p.rate_kbps:
            start = max(now, self.busy_until)
            if (start - now) * 1000 > p.queue_ms:
                self.overflowed += 1  # the bottleneck's queue is full
                return None
            self.busy_until = start + size * 8 / (p.rate_kbps * 1000)
            depart = self.busy_until
        delay = p.delay_ms + (self.rng.uniform(-p.jitter_ms, p.jitter_ms) if p.jitter_ms else 0.0)
        self.sent += 1
        return depart + max(0.0, delay) / 1000

    @property
    def dropped(self) -> int:
        return self.lost + self.overflowed

    def counts(self) -> dict[str, int]:
        return {"sent": self.sent, "lost": self.lost, "overflowed": self.overflowed}


class _ClientSide(asyncio.DatagramProtocol):
    """The relay's listening socket: datagrams from clients go on towards the target."""

    def __init__(self, relay: LinkRelay) -> None:
        self.relay = relay
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.relay._from_client(data, addr)


class _TargetSide(asyncio.DatagramProtocol):
    """One socket per client towards the target, so the target sees each client as its own address."""

    def __init__(self, relay: LinkRelay, client: Address) -> None:
        self.relay = relay
        self.client = client
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.relay._from_target(data, self.client)


class LinkRelay:
    def __init__(self, profile: Profile, target: Address, seed: int) -> None:
        self.profile = profile
        self.target = target
        rng = random.Random(seed)
        self.up = _Direction(profile, rng)  # client -> target
        self.down = _Direction(profile, rng)  # target -> client
        self.port = 0
        self._listen: _ClientSide | None = None
        self._targets: dict[Address, _TargetSide] = {}
        self._pending: dict[Address, list[bytes]] = {}
        self._loop = asyncio.get_running_loop()

    @classmethod
    async def start(cls, profile: Profile, target: Address, *, host: str = "127.0.0.1", port: int = 0,
                    seed: int = 7) -> LinkRelay:
        relay = cls(profile, target, seed)
        transport, protocol = await relay._loop.create_datagram_endpoint(
            lambda: _ClientSide(relay), local_addr=(host, port))
        relay._listen = protocol
        relay.port = transport.get_extra_info("sockname")[1]
        return relay

    def _from_client(self, data: bytes, client: Address) -> None:
        at = self.up.schedule(len(data), self._loop.time())
        if at is not None:
            self._loop.call_at(at, self._to_target, data, client)

    def _to_target(self, data: bytes, client: Address) -> None:
        side = self._targets.get(client)
        if side is not None and side.transport is not None:
            side.transport.sendto(data, self.target)
            return
        self._pending.setdefault(client, []).append(data)
        if side is None:
            side = _TargetSide(self, client)
            self._targets[client] = side
            self._loop.create_task(self._open(side))

    async def _open(self, side: _TargetSide) -> None:
        await self._loop.create_datagram_endpoint(lambda: side, local_addr=("127.0.0.1", 0))
        for data in self._pending.pop(side.client, []):
            side.transport.sendto(data, self.target)

    def _from_target(self, data: bytes, client: Address) -> None:
        at = self.down.schedule(len(data), self._loop.time())
        if at is not None:
            self._loop.call_at(at, self._to_client, data, client)

    def _to_client(self, data: bytes, client: Address) -> None:
        if self._listen is not None and self._listen.transport is not None:
            self._listen.transport.sendto(data, client)

    def close(self) -> None:
        if self._listen is not None and self._listen.transport is not None:
            self._listen.transport.close()
        for side in self._targets.values():
            if side.transport is not None:
                side.transport.close()


class TcpDelay:
    """The same link for a TCP service (the web server: pages, API, signaling): each chunk is passed on after
    the profile's one-way delay, in order. TCP recovers its own losses, so loss shows as delay only, and the
    rate is not shaped here (signaling is a trickle beside the media)."""

    def __init__(self, profile: Profile, target: Address) -> None:
        self.profile = profile
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def start(cls, profile: Profile, target: Address, *, host: str = "127.0.0.1", port: int = 0) -> TcpDelay:
        relay = cls(profile, target)
        relay._server = await asyncio.start_server(relay._connection, host, port)
        relay.port = relay._server.sockets[0].getsockname()[1]
        return relay

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        pumps = [asyncio.ensure_future(self._pump(reader, up_writer)),
                 asyncio.ensure_future(self._pump(up_reader, writer))]
        for task in pumps:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass  # the relay is closing: end this connection quietly
        finally:
            for task in pumps:
                task.cancel()
            for w in (writer, up_writer):
                w.close()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    if sink.can_write_eof():
                        sink.write_eof()
                    return
                await asyncio.sleep(max(0.0, due - loop.time()))
                sink.write(data)
                await sink.drain()

        writer_task = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await source.read(65536)
                queue.put_nowait((loop.time() + self.profile.delay_ms / 1000, data))
                if not data:
                    break
            await writer_task
        except (ConnectionError, OSError):
            pass
        finally:
            writer_task.cancel()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()


async def _serve(profile: Profile, target: Address, port: int, seed: int,
                 tcp_target: Address | None = None) -> dict[str, Any]:
    relay = await LinkRelay.start(profile, target, port=port, seed=seed)
    tcp = await TcpDelay.start(profile, tcp_target) if tcp_target else None
    if tcp is not None:
        print(f"tcp {tcp.port}", flush=True)
    print(f"listening {relay.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    relay.close()
    if tcp is not None:
        tcp.close()
    return {"profile": profile.name, "up": relay.up.counts(), "down": relay.down.counts()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m telehealth.media.linkemu",
                                     description="A weak link on loopback: a UDP relay with one of the named "
                                                 "profiles in front of a target (a TURN server).")
    parser.add_argument("profile", choices=sorted(PROFILES))
    parser.add_argument("--target", required=True, help="host:port the datagrams go on to")
    parser.add_argument("--port", type=int, default=0, help="the port to listen on (0: any free one)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the random loss and jitter")
    parser.add_argument("--tcp-target", help="host:port of a TCP service (the web server) to reach through the "
                                             "same link's delay; its port is printed as `tcp <port>` first")
    args = parser.parse_args(argv)

    def address(value: str, option: str) -> Address:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit():
            parser.error(f"{option} must be host:port")
        return host, int(port)

    target = address(args.target, "--target")
    tcp_target = address(args.tcp_target, "--tcp-target") if args.tcp_target else None
    counts = asyncio.run(_serve(PROFILES[args.profile], target, args.port, args.seed, tcp_target))
    print(json.dumps(counts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
