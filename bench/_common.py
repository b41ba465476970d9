"""What the benchmarks share: process figures from /proc, ports, percentiles, and the last line's shape.

Every benchmark ends with one JSON line of this shape (each file's docstring names its keys):

    {"bench": NAME, "smoke": BOOL,
     "figures": {KEY: NUMBER, ...},     the project's own figures
     "floors":  {KEY: NUMBER, ...},     the same work done bare, measured in the same run
     "ratios":  {KEY: NUMBER, ...},     figure / floor
     "goals":   {KEY: {"value": NUMBER, "op": ">=" | "<=", "limit": NUMBER, "met": BOOL}, ...},
     "goals_met": BOOL}

A machine shared with other work moves every figure; measured against its floor in the same run (and as
CPU time per unit of work), a figure says what the project costs, not how busy the machine was.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_ms(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_MS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ratio(figure: float, floor: float) -> float:
    return round(figure / floor, 3) if floor else float("nan")


def goal(value: float, op: str, limit: float) -> dict[str, Any]:
    met = value >= limit if op == ">=" else value <= limit
    return {"value": value, "op": op, "limit": limit, "met": bool(met)}


def report(bench: str, smoke: bool, figures: dict[str, Any], floors: dict[str, Any], ratios: dict[str, Any],
           goals: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"bench": bench, "smoke": smoke, "figures": figures, "floors": floors, "ratios": ratios,
            "goals": goals, "goals_met": all(g["met"] for g in goals.values())}


def print_goals(goals: dict[str, dict[str, Any]]) -> None:
    for name, g in goals.items():
        print(f"  goal {name}: {g['value']} {g['op']} {g['limit']}: {'met' if g['met'] else 'NOT met'}", flush=True)
