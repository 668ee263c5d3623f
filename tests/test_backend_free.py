"""The backend_free mark (tests/conftest.py): CI's PostgreSQL pass skips these tests, so a
test that touches the database or Redis must never carry it, or a backend's fault would go
unseen there."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BACKEND_FREE_MODULES, backend_free_violations

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class FakeItem:
    nodeid: str
    fixturenames: list[str]
    marks: dict[str, Any] = field(default_factory=dict)

    def get_closest_marker(self, name: str) -> Any:
        return self.marks.get(name)


FREE = {"backend_free": pytest.mark.backend_free.mark}


@pytest.mark.parametrize(
    ("fixturenames", "marks", "named"),
    [
        (["db"], FREE, "db"),
        (["transactional_db", "worker"], FREE, "transactional_db, worker"),
        (["redis_client"], FREE, "redis_client"),
        ([], {**FREE, "django_db": pytest.mark.django_db.mark}, "the django_db mark"),
    ],
)
def test_a_backend_free_test_that_uses_a_backend_is_named(fixturenames, marks, named):
    item = FakeItem("tests/x.py::test_x", ["redis_server", "settings", *fixturenames], marks)
    assert backend_free_violations([item]) == [f"tests/x.py::test_x uses {named}"]  # type: ignore[list-item]


def test_other_tests_may_use_anything_and_free_ones_nothing():
    items = [
        FakeItem("tests/a.py::test_a", ["db", "redis_client", "worker"]),
        FakeItem("tests/b.py::test_b", ["redis_server", "settings", "tmp_path"], FREE),
    ]
    assert backend_free_violations(items) == []  # type: ignore[arg-type]


def test_the_listed_modules_exist_and_carry_the_mark(request):
    assert all((ROOT / name).is_file() for name in BACKEND_FREE_MODULES)
    assert request.node.get_closest_marker("backend_free") is not None
