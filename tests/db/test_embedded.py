"""The embedded server's system user is created once however many processes start at once."""

from __future__ import annotations

import pwd
import subprocess
from typing import Any

import pytest

from stockroom.db import embedded


class FakeSystem:
    """`pwd.getpwnam` and `useradd` as seen by a process that loses the race to another:
    the user does not exist when it looks, and `useradd` finds the passwd file locked, then the
    user created by the winner."""

    def __init__(self, outcomes: list[int]) -> None:
        self.outcomes = outcomes
        self.users: set[str] = set()
        self.calls: list[list[str]] = []

    def getpwnam(self, name: str) -> Any:
        if name not in self.users:
            raise KeyError(name)
        return object()

    def run(self, args: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        code = self.outcomes.pop(0)
        if code == 9:  # the other process created it between our look and our useradd
            self.users.add(args[-1])
        return subprocess.CompletedProcess(args, code, "", "useradd: failure")


@pytest.fixture
def system(monkeypatch: pytest.MonkeyPatch) -> FakeSystem:
    fake = FakeSystem([])
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr(pwd, "getpwnam", fake.getpwnam)
    monkeypatch.setattr(subprocess, "run", fake.run)
    monkeypatch.setattr("time.sleep", lambda _: None)
    return fake


def test_a_user_created_meanwhile_by_another_process_is_not_an_error(system: FakeSystem) -> None:
    system.outcomes = [9]
    embedded._ensure_system_user("pg_test")
    assert system.calls == [["useradd", "-s", "/bin/bash", "pg_test"]]


def test_a_locked_passwd_file_is_retried_until_the_user_exists(system: FakeSystem) -> None:
    system.outcomes = [1, 1, 9]  # 1: "cannot lock /etc/passwd; try again later"
    embedded._ensure_system_user("pg_test")
    assert len(system.calls) == 3


def test_an_existing_user_is_left_alone(system: FakeSystem) -> None:
    system.users.add("pg_test")
    embedded._ensure_system_user("pg_test")
    assert system.calls == []


def test_a_persistent_failure_is_reported(system: FakeSystem) -> None:
    system.outcomes = [1] * 20
    with pytest.raises(RuntimeError, match="useradd pg_test failed"):
        embedded._ensure_system_user("pg_test")
