from __future__ import annotations

import gc

import pytest

from ingestion.pipeline.collector import fewer_collections


@pytest.fixture
def thresholds():  # type: ignore[no-untyped-def]
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_the_threshold_is_raised_inside_and_restored_after_an_error(thresholds) -> None:  # type: ignore[no-untyped-def]
    gc.set_threshold(700, 10, 10)
    with pytest.raises(RuntimeError), fewer_collections(50_000):
        assert gc.get_threshold() == (50_000, 10, 10)
        raise RuntimeError
    assert gc.get_threshold() == (700, 10, 10)


def test_collection_turned_off_stays_off(thresholds) -> None:  # type: ignore[no-untyped-def]
    gc.set_threshold(0, 10, 10)
    with fewer_collections(50_000):
        assert gc.get_threshold() == (0, 10, 10)
