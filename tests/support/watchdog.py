"""A hard stop behind pytest-timeout's signal method.

The signal method fails a test that runs past `timeout` with its traceback, under xdist too.
But it raises once, in whatever frame runs: code that catches BaseException (a retry loop, a
task that swallows it) or a thread spinning on its own survives it. So each test also arms
`faulthandler` for `timeout + timeout_hard_grace` seconds: if the test still runs then, every
thread's stack is dumped and the process exits (under xdist the worker dies and its test is
reported failed). A regression fails CI instead of hanging it.
"""

from __future__ import annotations

import faulthandler
import sys
from collections.abc import Iterator

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "timeout_hard_grace",
        "seconds after `timeout` at which a still-running test kills its process",
        default="30",
    )


def _timeout_of(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    if marker is not None and "timeout" in marker.kwargs:
        return float(marker.kwargs["timeout"])
    return float(item.config.getini("timeout") or 0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    timeout = _timeout_of(item)
    if timeout > 0:
        grace = float(item.config.getini("timeout_hard_grace"))
        faulthandler.dump_traceback_later(timeout + grace, exit=True, file=sys.__stderr__)
    try:
        yield
    finally:
        if timeout > 0:
            faulthandler.cancel_dump_traceback_later()
