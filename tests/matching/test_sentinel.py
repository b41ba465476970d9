"""Redis behind Sentinel: a node given a `redis+sentinel://` URL finds the master through the sentinels and
serves a consultation as with a plain Redis URL."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from telehealth.matching.redis_broker import redis_client
from telehealth.records.consent import synthetic_signature
from tests.conftest import make_settings
from tests.support.processes import free_port
from tests.support.wsclient import serve


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def sentinel_url(tmp_path: Path) -> Iterator[str]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    master, sentinel = free_port(), free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {sentinel}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor thmaster 127.0.0.1 {master} 1\n")
    procs = [_spawn(["redis-server", "--port", str(master), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", str(tmp_path)]),
             _spawn(["redis-server", str(conf), "--sentinel"])]
    try:
        yield f"redis+sentinel://127.0.0.1:{sentinel}/thmaster/0"
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)


async def _ready(url: str) -> None:
    for _ in range(100):
        client = redis_client(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            if await client.ping():
                return
        except (aioredis.RedisError, OSError):
            await asyncio.sleep(0.1)
        finally:
            await client.aclose()
    raise AssertionError("no master found through the sentinel")


def test_sentinel_urls_are_parsed() -> None:
    with pytest.raises(ValueError):
        redis_client("redis+sentinel://127.0.0.1:26379")
    client = redis_client("redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2/mymaster/2")
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["db"] == 2 and kwargs["password"] == "s3cret"
    assert client.connection_pool.service_name == "mymaster"  # type: ignore[attr-defined]
    sentinels = client.connection_pool.sentinel_manager.sentinels  # type: ignore[attr-defined]
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [26379, 26379]


async def test_a_node_on_sentinel_serves_a_consultation(tmp_path: Path, sentinel_url: str) -> None:
    await _ready(sentinel_url)
    settings = make_settings(tmp_path, redis_url=sentinel_url, redis_prefix="sentinel")
    async with serve(settings) as node:
        specialist = await node.connect("paeds.assoc")
        await specialist.ok("presence.set", status="available")
        clinic = await node.connect("village3")
        created = await clinic.ok("consultation.create", patient={"name": "Ma Yun", "sex": "female",
                                                                  "birth_year": 2019},
                                  specialty="paediatrics", urgency="urgent", chief_complaint="high fever",
                                  consent={"by": "guardian", "name": "Ma Hua", "relation": "mother",
                                           "signature": synthetic_signature()})
        cid = created["consultation"]["id"]
        await specialist.event("offer", consultation_id=cid)
        accepted = await specialist.ok("offer.accept", consultation_id=cid)
        assert accepted["session_id"] > 0
