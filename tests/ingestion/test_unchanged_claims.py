"""UnchangedRecords' claiming of a whole batch at once (claim_all, the re-run's fast path)
against the listing's claiming one record after another (is_unchanged, claim, item): the
same items, keys, contents and count, or nothing claimed at all. No database: the stored
jobs are given."""

from __future__ import annotations

from typing import Any

import pytest

from ingestion.adapters import Posting, RawRecord
from ingestion.models import JobStatus, Source
from ingestion.pipeline.unchanged import ITEM_MAX, Stored, UnchangedRecords, job_company

SOURCE = Source(pk=7, company="Initech", kind="file")
COMPANY_MAX = 200


def _record(key: str, *, company: str = "", raw: str = "", row: int | None = 1) -> RawRecord:
    return RawRecord(
        external_id=key,
        company=company,
        raw_hash=raw or f"raw-{key.strip()}",
        row=row,
        size=1,
        record=None,
        mapper=None,  # type: ignore[arg-type]
    )


def _stored(
    records: list[RawRecord], **changes: tuple[int, str, str, str, str, str]
) -> dict[tuple[str, str], Stored]:
    """Each record's stored job, as it was read last (`changes`: by key, another one)."""
    stored: dict[tuple[str, str], Stored] = {}
    for n, record in enumerate(records, 1):
        key = (job_company(record, SOURCE), record.external_id.strip())
        if key[1]:
            job = (n, f"content-{key[1]}", JobStatus.READY, record.raw_hash, f"Title {n}", "u")
            stored[key] = changes.get(key[1], job)
    return stored


def _one_by_one(
    records: UnchangedRecords, batch: list[Any], stored: dict[tuple[str, str], Stored]
) -> list[Any]:
    """The items of the entries the listing would claim one after another (None: compared)."""
    out: list[Any] = []
    for entry, key in zip(batch, records.keys(batch), strict=True):
        if (
            type(entry) is RawRecord
            and records.is_unchanged(entry, key, stored)
            and records.claim(entry, key, stored)
        ):
            out.append(records.item(3, entry, key, stored[key]))
        else:
            out.append(None)
    return out


def _records(listed: dict[tuple[str, str], str] | None = None) -> UnchangedRecords:
    keys = dict(listed or {})
    contents = {(company, f"content-{key}"): key for company, key in keys}
    return UnchangedRecords(SOURCE, 1, keys=keys, contents=contents)


def _batches() -> dict[str, tuple[list[Any], dict[str, Any]]]:
    plain = [_record(f"k{n}", row=n) for n in range(1, 6)]
    companies = [
        _record("k1", company="Globex"),
        _record("k1", company="  Globex Ltd "),  # another company, the same id
        _record("k2", company="", row=None),
        _record(" k3 ", company="A" * (COMPANY_MAX + 5)),
    ]
    long = [
        _record("x" * (ITEM_MAX["external_id"] + 10)),
        _record("y", row=None),
    ]
    long_stored = _stored(long)
    key = ("Initech", "x" * (ITEM_MAX["external_id"] + 10))
    long_stored[key] = (9, "c", JobStatus.READY, long[0].raw_hash, "T" * 999, "h" * 3000)
    twice = [_record("k1", row=1), _record("k2", row=2), _record("k1", row=3)]
    expired = _stored(plain, k3=(3, "content-k3", JobStatus.EXPIRED, "raw-k3", "T", "u"))
    rehashed = _stored(plain, k2=(2, "content-k2", JobStatus.READY, "other", "T", "u"))
    same_content = _stored(plain, k4=(4, "content-k1", JobStatus.READY, "raw-k4", "T", "u"))
    no_hash = [_record("k1"), _record("k2")]
    no_hash[1].raw_hash = ""
    return {
        "every record unchanged": (plain, {}),
        "rows naming companies": (companies, {}),
        "values cut to the items' columns": (long, {"stored": long_stored}),
        "a key twice in the batch": (twice, {}),
        "a key listed in an earlier batch": (plain, {"listed": {("Initech", "k4"): "row 9"}}),
        "the same content under two keys": (plain, {"stored": same_content}),
        "an expired job": (plain, {"stored": expired}),
        "a raw hash that changed": (plain, {"stored": rehashed}),
        "a record without a raw hash": (no_hash, {}),
        "a record without a key": ([_record("k1"), _record("  ")], {}),
        "a job not stored": (plain, {"stored": _stored(plain[:4])}),
        "a posting among the records": ([_record("k1"), Posting(external_id="p")], {}),
    }


@pytest.mark.parametrize("name", list(_batches()))
def test_a_batch_claimed_at_once_is_claimed_as_record_by_record(name: str) -> None:
    batch, given = _batches()[name]
    stored = given.get("stored") or _stored([e for e in batch if type(e) is RawRecord])
    at_once, by_one = _records(given.get("listed")), _records(given.get("listed"))
    before = (dict(at_once._keys), dict(at_once._contents))

    claimed = at_once.claim_all(3, batch, at_once.keys(batch), stored)
    expected = _one_by_one(by_one, batch, stored)

    if claimed is None:
        assert None in expected
        assert (at_once._keys, at_once._contents, at_once.claimed) == (*before, 0)
        return
    items, ids = claimed
    assert items == expected
    assert ids == [item.job_id for item in expected]
    assert list(at_once._keys.items()) == list(by_one._keys.items())
    assert list(at_once._contents.items()) == list(by_one._contents.items())
    assert at_once.claimed == by_one.claimed == len(batch)


def test_only_batches_with_a_record_claimed_otherwise_fall_back() -> None:
    falling_back = {
        name for name, (batch, given) in _batches().items() if not _claimable(batch, given)
    }
    assert falling_back == set(_batches()) - {
        "every record unchanged",
        "rows naming companies",
        "values cut to the items' columns",
    }


def _claimable(batch: list[Any], given: dict[str, Any]) -> bool:
    records = _records(given.get("listed"))
    stored = given.get("stored") or _stored([e for e in batch if type(e) is RawRecord])
    return records.claim_all(3, batch, records.keys(batch), stored) is not None


def test_an_items_values_are_cut_to_its_columns() -> None:
    batch, given = _batches()["values cut to the items' columns"]
    records = _records()
    claimed = records.claim_all(3, batch, records.keys(batch), given["stored"])
    assert claimed is not None
    item = claimed[0][0]
    assert len(item.external_id) == ITEM_MAX["external_id"]
    assert (len(item.title), len(item.url)) == (ITEM_MAX["title"], ITEM_MAX["url"])
    assert records._keys[SOURCE.company, "y"] == "'y'"


def test_a_batchs_keys_are_its_jobs_keys() -> None:
    batch = _batches()["rows naming companies"][0] + [Posting(external_id=" p ", company=" B ")]
    keys = _records().keys(batch)
    assert keys == [(job_company(e, SOURCE), e.external_id.strip()) for e in batch]
    assert keys[2][0] == "Initech" and len(keys[3][0]) == COMPANY_MAX
