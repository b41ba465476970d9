"""Every benchmark runs in its smoke mode (seconds, tiny sizes, no figure judged) and ends with the JSON line its
docstring documents: a benchmark that crashes or changes its output's shape fails here, not on the day it is
next run for figures."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# The keys each benchmark's last line promises (its docstring): figures and floors at least these, ratios and
# goals exactly these.
FLOORED: dict[str, dict[str, set[str]]] = {
    "signaling.py": {
        "figures": {"relay_max_msgs_per_s", "relay_msgs_per_s", "relay_p50_ms", "relay_p99_ms", "relay_paced_rate",
                    "relay_lost", "relay_cpu_us_per_msg", "ws_idle_connections", "ws_bytes_per_connection",
                    "ws_connect_per_s", "ws_cpu_ms_per_connect", "setup_to_first_frame_ms", "setup_samples_ms"},
        "floors": {"relay_max_msgs_per_s", "relay_msgs_per_s", "relay_p50_ms", "relay_p99_ms", "relay_cpu_us_per_msg",
                   "ws_bytes_per_connection", "ws_connect_per_s", "ws_cpu_ms_per_connect", "setup_to_first_frame_ms",
                   "setup_samples_ms"},
        "ratios": {"relay_throughput", "relay_p99", "relay_cpu", "ws_memory", "ws_connects", "ws_connect_cpu",
                   "setup"},
        "goals": {"relay_throughput", "relay_p99", "ws_memory", "ws_connects", "setup"},
    },
    "matching.py": {
        "figures": {"memory_offer_p50_ms", "memory_offer_p99_ms", "memory_offer_p50_ms_by_queued",
                    "memory_latency_ratio_largest_vs_100", "memory_claims_per_s", "memory_double_claims",
                    "memory_lost", "memory_queued", "memory_specialists_online"},
        "floors": {"memory_offer_p50_ms", "memory_offer_p99_ms", "memory_offer_ops_p50_ms"},
        "ratios": {"memory_offer_p50", "memory_offer_p99"},
        "goals": {"memory_offer_p99", "memory_no_double_claims"},
    },
    "load.py": {
        "figures": {"consultations_per_min", "offer_latency_p50_ms", "offer_latency_p99_ms", "errors",
                    "rss_growth_pct", "cpu_ms_per_consultation", "by_nodes"},
        "floors": {"offer_latency_idle_p50_ms", "offer_latency_idle_p99_ms"},
        "ratios": {"p99_vs_idle"},
        "goals": {"p99_vs_idle", "errors"},
    },
}
REDIS_KEYS: dict[str, set[str]] = {
    "figures": {"redis_offer_p50_ms", "redis_offer_p99_ms", "redis_claims_per_s", "redis_double_claims"},
    "floors": {"redis_offer_p50_ms", "redis_offer_p99_ms", "redis_offer_ops_p50_ms", "redis_claims_per_s"},
    "ratios": {"redis_offer_p50", "redis_offer_p99", "redis_claims"},
    "goals": {"redis_no_double_claims", "redis_claims_per_s"},
}
SMOKED = {*FLOORED, "field.py", "capacity.py"}
CAPACITY = {"figures": {"sustained_rate", "sustained_per_node", "offer_p50_ms", "offer_p99_ms", "offer_at_rate",
                        "errors", "cpu_ms_per_consultation", "cpu_ms_per_consultation_net_of_idle",
                        "cpu_bound_rate_per_core", "redis_cpu_ms_per_consultation",
                        "postgres_cpu_ms_per_consultation", "rss_mib_per_node", "sockets", "by_nodes"},
            "floors": {"p99_limit_ms"}, "ratios": {"offer_p99_vs_limit"}, "goals": {"sustained_per_node"}}


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def postgres_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def run_smoke(name: str, *extra: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(BENCH / name), "--smoke", *extra], cwd=ROOT, capture_output=True,
                          text=True, timeout=240, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, f"{name} --smoke exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    lines = proc.stdout.strip().splitlines()
    assert lines, f"{name} --smoke printed nothing"
    last: dict[str, Any] = json.loads(lines[-1])
    return last


def check_floored(name: str, last: dict[str, Any], expected: dict[str, set[str]]) -> None:
    assert set(last) == {"bench", "smoke", "figures", "floors", "ratios", "goals", "goals_met"}
    assert last["bench"] == name.removesuffix(".py") and last["smoke"] is True
    for part in ("figures", "floors"):
        missing = expected[part] - set(last[part])
        assert not missing, f"{name}: {part} lacks {sorted(missing)}"
    assert set(last["ratios"]) == expected["ratios"]
    assert set(last["goals"]) == expected["goals"]
    for key, g in last["goals"].items():
        assert set(g) == {"value", "op", "limit", "met"}, key
        assert g["op"] in (">=", "<=") and isinstance(g["met"], bool), key
    assert last["goals_met"] == all(g["met"] for g in last["goals"].values())


def test_every_benchmark_has_a_smoke_run_here() -> None:
    benches = {p.name for p in BENCH.glob("*.py") if not p.name.startswith("_")}
    assert benches == SMOKED, "a benchmark without its smoke run here, or one listed that is gone"


@pytest.mark.slow
def test_signaling_benchmark_smoke() -> None:
    last = run_smoke("signaling.py")
    check_floored("signaling.py", last, FLOORED["signaling.py"])
    # Every phase ran: messages were relayed through both servers and the idle sockets all stayed open.
    assert last["figures"]["relay_max_msgs_per_s"] > 0 and last["floors"]["relay_max_msgs_per_s"] > 0
    assert last["figures"]["ws_idle_connections"] > 0 and last["figures"]["setup_to_first_frame_ms"] > 0


@pytest.mark.slow
def test_matching_benchmark_smoke() -> None:
    redis = redis_up()
    database = os.environ.get("TELEHEALTH_TEST_DATABASE_URL", "")
    last = run_smoke("matching.py", "--backends", "memory,redis" if redis else "memory", "--database-url", database)
    expected = {k: set(v) for k, v in FLOORED["matching.py"].items()}
    if redis:
        for part, keys in REDIS_KEYS.items():
            expected[part] |= keys
    check_floored("matching.py", last, expected)
    assert last["figures"]["memory_double_claims"] == 0 and last["figures"]["memory_lost"] == 0


@pytest.mark.slow
def test_load_benchmark_smoke() -> None:
    if not redis_up():
        pytest.skip("the load benchmark's nodes share a Redis on 127.0.0.1:6379")
    last = run_smoke("load.py")
    check_floored("load.py", last, FLOORED["load.py"])
    assert set(last["figures"]["by_nodes"]) == {"1"}


@pytest.mark.slow
def test_capacity_benchmark_smoke() -> None:
    if not redis_up() or not postgres_up():
        pytest.skip("the capacity benchmark's nodes share a Redis on 127.0.0.1:6379 and PostgreSQL on 5432")
    last = run_smoke("capacity.py")
    check_floored("capacity.py", last, CAPACITY)
    one = last["figures"]["by_nodes"]["1"]
    # Every account held its socket and at least one step ran consultations through to the signed note.
    assert last["figures"]["sockets"] == one["sockets"] > 0
    assert one["steps"] and one["steps"][0]["completed"] > 0


@pytest.mark.slow
@pytest.mark.browser
def test_field_benchmark_smoke() -> None:
    if not Path(CHROMIUM).exists() or shutil.which("turnserver") is None:
        pytest.skip("chromium and coturn are needed (.ci/run installs them)")
    last = run_smoke("field.py")
    assert set(last) == {"seconds", "calls_per_profile", "profiles", "all_goals_met", "smoke"}
    assert last["smoke"] is True and set(last["profiles"]) == {"good"}
    good = last["profiles"]["good"]
    assert {"calls", "connected", "setup_ms", "audio_continuity", "video_fps", "goals"} <= set(good)
