"""The per-test timeout stops any test, under xdist too: a spinning test fails CI instead of
hanging it (a removed no-oversell guard once spun for over 10 minutes)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPINNING = """
import pytest


def test_spins():
    while True:
        pass


def test_spins_and_swallows_the_timeout():
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass  # a retry loop that catches everything survives the signal
"""


@pytest.mark.slow
def test_a_spinning_test_fails_under_xdist_even_if_it_swallows_the_signal(tmp_path: Path) -> None:
    (tmp_path / "test_spinning.py").write_text(SPINNING)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    )
    began = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(tmp_path / "test_spinning.py"),
            "-c",
            str(tmp_path / "pytest.ini"),
            "--rootdir",
            str(tmp_path),
            "-p",
            "tests.support.watchdog",
            "-p",
            "no:cacheprovider",
            "-n",
            "2",
            "-o",
            "timeout=2",
            "-o",
            "timeout_method=signal",
            "-o",
            "timeout_hard_grace=3",
            "--max-worker-restart=4",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert time.monotonic() - began < 200
    # The plain spin is stopped by the signal, with its traceback; the one that swallows the
    # signal is stopped by the watchdog, which kills its worker.
    assert "Failed: Timeout (>2.0s) from pytest-timeout" in result.stdout, result.stdout[-3000:]
    assert "crashed while running 'test_spinning.py::test_spins_and_swallows" in result.stdout
    assert "2 failed" in result.stdout
