"""The pages' JavaScript without a browser: `node --test tests/js/` (the ladder, the stats maths, the message
parsing, the JSON API calls against a real HTTP server), every test of it passing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_javascript_tests_pass() -> None:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("Debian's nodejs is not installed (.ci/run installs it)")
    done = subprocess.run([node, "--test", "--test-reporter=tap", "tests/js/"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    out = done.stdout + done.stderr
    counts = {k: int(v) for k, v in re.findall(r"^# (tests|pass|fail) (\d+)$", done.stdout, re.MULTILINE)}
    failed = [line for line in done.stdout.splitlines() if line.lstrip().startswith("not ok")]
    assert done.returncode == 0 and not failed, out[-4000:]
    # The files of tests/js are found and run: a run that finds none passes nothing.
    files = len(list((ROOT / "tests" / "js").glob("*.test.mjs")))
    assert files >= 5 and counts.get("fail") == 0 and counts.get("tests", 0) >= files, out[-2000:]
    assert counts["pass"] == counts["tests"], out[-2000:]
