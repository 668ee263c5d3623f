"""Uploaded files: chunked storage in the database, the check before saving, and the file
adapter reading CSV, JSON and JSONL postings with per-row errors."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from ingestion import uploads
from ingestion.adapters import readers
from ingestion.adapters.base import Posting, RowError, SourceFailed
from ingestion.adapters.files import FileAdapter
from ingestion.adapters.uploaded import upload_check, upload_store
from ingestion.fetching import Fetcher
from ingestion.models import Source, UploadPart
from ingestion.uploads import UploadError, upload_format, upload_open
from tests.ingestion.pages import (
    generate_postings_file,
    posting_row,
    postings_csv,
    postings_file,
    postings_json,
    postings_jsonl,
    url_list_csv,
)

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024


def _source(user: Any, kind: str = "file", identifier: str = "jobs.csv") -> Source:
    return Source.objects.create(
        owner=user, company="Acme Robotics", kind=kind, identifier=identifier
    )


def _store(user: Any, name: str, data: bytes) -> Source:
    source = _source(user, identifier=name)
    upload_store(source=source, name=name, fileobj=io.BytesIO(data))
    return source


def _list(user: Any, name: str, data: bytes) -> list[Posting]:
    source = _store(user, name, data)
    # No network: a fetcher that is never used.
    with Fetcher(store=False) as fetcher:
        return list(FileAdapter(source, fetcher).list_postings())


# --- storage ----------------------------------------------------------------------------------


def test_a_multi_chunk_file_reads_back_byte_for_byte(user: Any) -> None:
    data = bytes(range(1, 256)) * (10 * 1024) + b"tail"  # 2.5 MiB: three chunks
    source = _store(user, "jobs.jsonl", data)

    assert source.upload_size == len(data)
    assert (source.upload_name, source.upload_format) == ("jobs.jsonl", "jsonl")
    chunks = UploadPart.objects.filter(source=source).order_by("seq")
    assert [len(c.data) for c in chunks] == [MIB, MIB, len(data) - 2 * MIB]
    with upload_open(source) as fileobj:
        assert fileobj.read(10) == data[:10]
        assert fileobj.read() == data[10:]


def test_reading_an_upload_fetches_one_chunk_at_a_time(user: Any, monkeypatch: Any) -> None:
    source = _store(user, "jobs.jsonl", b"x" * (3 * MIB))
    # Each chunk is one query (in binary on PostgreSQL, past Django's query log): count them.
    fetched: list[int] = []
    fetch = uploads._part_data
    monkeypatch.setattr(uploads, "_part_data", lambda pk: fetched.append(pk) or fetch(pk))

    with upload_open(source) as fileobj:
        fileobj.read(100)
        after_first = len(fetched)
        fileobj.read(MIB)

    chunks = list(UploadPart.objects.filter(source=source).order_by("seq").values_list("pk"))
    assert after_first == 1
    assert fetched == [pk for (pk,) in chunks[:2]]


def test_the_source_row_records_name_format_and_size(user: Any) -> None:
    source = _store(user, "C:\\fakepath\\Open roles.csv", postings_csv([posting_row(1)]))

    source.refresh_from_db()
    assert (source.upload_name, source.upload_format) == ("Open roles.csv", "csv")
    assert source.upload_size > 0


def test_a_new_upload_replaces_the_previous_one(user: Any) -> None:
    source = _store(user, "a.jsonl", b"y" * (2 * MIB + 1))

    upload_store(source=source, name="b.csv", fileobj=io.BytesIO(b"external_id,title\n1,x\n"))

    with upload_open(source) as fileobj:
        assert fileobj.read() == b"external_id,title\n1,x\n"
    assert UploadPart.objects.filter(source=source).count() == 1


def test_a_file_over_the_size_limit_is_refused_and_the_old_upload_kept(
    user: Any, settings: Any
) -> None:
    settings.INTAKE_UPLOAD_MAX_BYTES = 2 * MIB
    source = _store(user, "a.jsonl", b"old\n")

    with pytest.raises(UploadError, match="larger than the 2 MB limit"):
        upload_store(source=source, name="big.jsonl", fileobj=io.BytesIO(b"z" * (2 * MIB + 1)))

    with upload_open(source) as fileobj:
        assert fileobj.read() == b"old\n"
    source.refresh_from_db()
    assert source.upload_name == "a.jsonl"


def test_a_file_declaring_a_size_over_the_limit_is_refused_before_reading(
    user: Any, settings: Any
) -> None:
    settings.INTAKE_UPLOAD_MAX_BYTES = MIB
    upload = io.BytesIO(b"external_id,title\n")
    upload.size = MIB + 1  # type: ignore[attr-defined]  # as Django's UploadedFile has

    with pytest.raises(UploadError, match="larger than"):
        upload_store(source=_source(user), name="jobs.csv", fileobj=upload)
    assert upload.tell() == 0


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("jobs.csv", b"external_id,title", "csv"),
        ("JOBS.JSON", b"[]", "json"),
        ("jobs.ndjson", b"{}", "jsonl"),
        ("jobs.txt", b"https://acme.example/jobs/1\n", "csv"),
        ("export", b'\xef\xbb\xbf [{"id": 1}]', "json"),
        ("export", b'{"jobs": [\n{"id": 1}]}', "json"),
        ("export", b'{"id": 1}\n{"id": 2}\n', "jsonl"),
    ],
)
def test_the_format_comes_from_the_name_or_the_contents(
    name: str, head: bytes, expected: str
) -> None:
    assert upload_format(name, head) == expected


def test_spreadsheets_and_binary_files_are_refused(user: Any) -> None:
    source = _source(user)

    with pytest.raises(UploadError, match="not a CSV, JSON or JSONL file"):
        upload_store(source=source, name="jobs.xlsx", fileobj=io.BytesIO(b"PK\x03\x04"))
    with pytest.raises(UploadError, match="not a CSV, JSON or JSONL text file: it is binary"):
        upload_store(source=source, name="jobs", fileobj=io.BytesIO(b"\x00\x01\x02" * 64))
    with pytest.raises(UploadError, match="is empty"):
        upload_store(source=source, name="jobs.csv", fileobj=io.BytesIO(b""))
    assert not UploadPart.objects.filter(source=source).exists()


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("jobs.csv", b"%PDF-1.7\n%\xe2\xe3\n1 0 obj", "a PDF document"),
        ("jobs.csv", b"PK\x03\x04\x14\x00\x06\x00", "a ZIP archive"),
        ("jobs.txt", b"\x1f\x8b\x08\x00", "compressed (gzip)"),
        ("jobs.csv", "external_id,title\n1,Chef\n".encode("utf-16-le"), "UTF-16 text"),
        ("jobs.csv", "external_id,title\n1,Chef\n".encode("utf-16"), "UTF-16 text"),
    ],
)
def test_a_binary_file_is_refused_whatever_its_name(name: str, data: bytes, kind: str) -> None:
    with pytest.raises(UploadError, match=re.escape(f"text file: it is {kind}")):
        upload_format(name, data)


def test_a_text_file_with_a_stray_nul_is_accepted() -> None:
    head = postings_csv([posting_row(1, description="a\x00b"), posting_row(2)])

    assert upload_format("jobs.csv", head) == "csv"


def test_opening_a_source_without_an_upload_says_so(user: Any) -> None:
    with pytest.raises(UploadError, match="has no uploaded file"):
        upload_open(_source(user))


# --- the check before saving ------------------------------------------------------------------


def test_the_check_counts_good_and_bad_rows_and_names_row_and_field() -> None:
    rows = [
        posting_row(1),
        posting_row(2, title=""),
        posting_row(3, url="ftp://x", posted_at="yesterday"),
        posting_row(4),
    ]

    report = upload_check(io.BytesIO(postings_csv(rows)), kind="file", fmt="csv")

    assert (report.good, report.bad, report.total, report.ok) == (2, 2, 4, True)
    assert report.errors == [
        RowError(2, "title", "title is required"),
        RowError(3, "url", "url 'ftp://x' is not an http(s) URL"),
        RowError(3, "posted_at", "posted_at 'yesterday' is not a date"),
    ]


def test_the_check_keeps_the_first_hundred_errors_and_counts_all() -> None:
    rows = [posting_row(n, title="") for n in range(1, 251)]

    report = upload_check(io.BytesIO(postings_jsonl(rows)), kind="file", fmt="jsonl")

    assert (report.good, report.bad) == (0, 250)
    assert len(report.errors) == 100
    assert str(report.errors[-1]) == "line 100: title is required"


def test_the_check_reports_a_missing_required_column_as_a_file_error() -> None:
    data = postings_csv([posting_row(1)], columns=["id", "name", "url"])

    report = upload_check(io.BytesIO(data), kind="file", fmt="csv")

    assert not report.ok
    assert report.error == "The file has no 'title' column; found: 'id', 'name', 'url'."


def test_the_check_stops_reading_at_the_size_limit(settings: Any) -> None:
    settings.INTAKE_UPLOAD_MAX_BYTES = 256 * 1024
    data = io.BytesIO(postings_jsonl(posting_row(n) for n in range(1, 2000)))
    assert len(data.getvalue()) > 4 * settings.INTAKE_UPLOAD_MAX_BYTES

    report = upload_check(data, kind="file", fmt="jsonl")

    assert report.error == "The file is larger than the 256 KB limit (INTAKE_UPLOAD_MAX_BYTES)."
    assert data.tell() <= settings.INTAKE_UPLOAD_MAX_BYTES + 1


def test_the_check_of_a_url_list_reports_bad_and_duplicate_urls() -> None:
    data = url_list_csv(
        ["https://acme.example/a", "ftp://acme.example/b", "https://ACME.example/a"]
    )

    report = upload_check(io.BytesIO(data), kind="urls", fmt="csv")

    assert (report.good, report.bad, report.duplicates, report.total) == (1, 1, 1, 3)
    assert [str(e) for e in report.errors] == [
        "row 2: url 'ftp://acme.example/b' is not an http(s) URL",
    ]
    assert [str(e) for e in report.duplicate_rows] == ["row 3: duplicate of row 1"]


def test_the_check_of_a_too_long_url_list_says_so(settings: Any) -> None:
    settings.INTAKE_URL_LIST_MAX = 3
    data = url_list_csv([f"https://acme.example/{n}" for n in range(4)])

    report = upload_check(io.BytesIO(data), kind="urls", fmt="csv")

    assert "more than 3 URLs" in report.error


# --- the file adapter -------------------------------------------------------------------------


def test_a_csv_file_maps_every_field(user: Any) -> None:
    row = posting_row(
        5, salary_min="120,000", salary_max="150000", salary_currency="usd", department="Data"
    )

    (posting,) = _list(user, "jobs.csv", postings_csv([row]))

    assert posting.external_id == "F-000005"
    assert posting.title == row["title"]
    assert posting.url == "https://careers.acme.example/jobs/5"
    assert posting.location == "Lisbon, PT"
    assert (posting.remote, posting.workplace_type) == (True, "remote")
    assert posting.employment_type == "intern"
    assert posting.department == "Data"
    assert posting.posted_at == datetime(2025, 3, 3, 4, 30, tzinfo=UTC)
    assert posting.valid_through == datetime(2025, 5, 2, tzinfo=UTC)
    assert (posting.salary_min, posting.salary_max) == (Decimal("120000"), Decimal("150000"))
    assert posting.salary_currency == "USD"
    assert posting.description_html == row["description"]
    assert (posting.row, posting.invalid_reasons) == (1, [])


def test_malformed_csv_rows_are_invalid_and_good_rows_go_in(user: Any) -> None:
    rows = [
        posting_row(1),
        posting_row(2, external_id="", title=""),
        posting_row(3, url="ftp://x"),
        posting_row(4, posted_at="yesterday", salary_min="lots"),
        posting_row(5, remote="maybe", workplace_type="moon"),
        posting_row(6),
    ]

    postings = _list(user, "jobs.csv", postings_csv(rows))

    assert [p.invalid_reasons for p in postings] == [
        [],
        ["row 2: external_id is required", "row 2: title is required"],
        ["row 3: url 'ftp://x' is not an http(s) URL"],
        ["row 4: posted_at 'yesterday' is not a date", "row 4: salary_min 'lots' is not an amount"],
        [
            "row 5: remote 'maybe' is not yes or no",
            "row 5: workplace_type 'moon' is not remote, hybrid or onsite",
        ],
        [],
    ]
    assert [p.row for p in postings] == [1, 2, 3, 4, 5, 6]
    assert postings[1].external_id == ""
    assert postings[3].external_id == "F-000004"


def test_a_csv_with_bom_crlf_multiline_fields_and_extra_columns_is_read(user: Any) -> None:
    data = (
        "\ufeffID,Job Title,Description,Favourite colour\r\n"
        '1,Backend Engineer,"First line\r\n\r\nSecond, with a comma",blue\r\n'
        '2,"Designer, ""senior""",<p>Hi</p>,green\r\n'
    ).encode()

    first, second = _list(user, "jobs.csv", data)

    assert (first.external_id, first.title) == ("1", "Backend Engineer")
    assert first.description_html == "<p>First line</p><p>Second, with a comma</p>"
    assert (second.external_id, second.title, second.description_html) == (
        "2",
        'Designer, "senior"',
        "<p>Hi</p>",
    )
    assert first.invalid_reasons == second.invalid_reasons == []


@pytest.mark.parametrize("newline", ["\n", "\r"])
def test_a_csv_with_lf_or_bare_cr_line_ends_is_read(user: Any, newline: str) -> None:
    data = newline.join(
        ["ID,Job Title,Description", '1,Chef,"Line one' + newline + 'line two"', "2,Cook,x", ""]
    ).encode()

    first, second = _list(user, "jobs.csv", data)

    assert (first.title, second.title) == ("Chef", "Cook")
    # The quoted cell keeps both of its lines.
    assert "Line one" in first.description_html and "line two" in first.description_html
    assert first.invalid_reasons == second.invalid_reasons == []


def test_a_csv_without_a_required_column_fails_the_source(user: Any) -> None:
    data = b"external_id,name,location\n1,Engineer,Berlin\n"

    with pytest.raises(SourceFailed, match="no 'title' column; found: 'external_id', 'name'"):
        _list(user, "jobs.csv", data)


def test_a_csv_that_is_not_utf8_fails_the_source_with_advice(user: Any) -> None:
    data = "external_id,title\n1,Ingénieur\n".encode("cp1252")

    with pytest.raises(SourceFailed, match="not UTF-8 .* 'CSV UTF-8'"):
        _list(user, "jobs.csv", data)


def test_duplicate_external_ids_in_a_file_are_both_yielded(user: Any) -> None:
    postings = _list(user, "jobs.csv", postings_csv([posting_row(1), posting_row(1, title="B")]))

    assert [(p.external_id, p.title) for p in postings] == [
        ("F-000001", posting_row(1)["title"]),
        ("F-000001", "B"),
    ]


def test_a_json_array_file_is_read_with_row_errors(user: Any) -> None:
    rows: list[Any] = [
        posting_row(1),
        "not an object",
        {"job_id": 7, "title": "Ops", "remote": True},
    ]

    postings = _list(user, "jobs.json", postings_json(rows))

    assert postings[0].invalid_reasons == []
    assert postings[1].invalid_reasons == ["row 2: expected an object, found str"]
    assert (postings[2].external_id, postings[2].title, postings[2].remote) == ("7", "Ops", True)


def test_a_json_object_with_a_jobs_array_is_read(user: Any) -> None:
    postings = _list(user, "jobs.json", postings_json([posting_row(1), posting_row(2)], wrap=True))

    assert [p.external_id for p in postings] == ["F-000001", "F-000002"]


def test_a_json_object_without_jobs_fails_the_source(user: Any) -> None:
    with pytest.raises(SourceFailed, match="object without postings"):
        _list(user, "jobs.json", json.dumps({"postings": [posting_row(1)]}).encode())


def test_a_truncated_json_file_fails_the_source_naming_the_last_good_row(user: Any) -> None:
    data = postings_json([posting_row(1), posting_row(2)])[:-200]

    with pytest.raises(SourceFailed, match="not valid after row 1"):
        _list(user, "jobs.json", data)


def test_a_jsonl_file_reports_broken_lines_by_number_and_keeps_the_rest(user: Any) -> None:
    lines: list[Any] = [
        posting_row(1),
        '{"external_id": "2", "title": }',
        "",
        posting_row(4, title=""),
    ]

    postings = _list(user, "jobs.jsonl", postings_jsonl(lines))

    assert postings[0].invalid_reasons == []
    assert postings[1].invalid_reasons[0].startswith("line 2: not valid JSON: Expecting value")
    assert postings[2].invalid_reasons == ["line 4: title is required"]
    assert [p.row for p in postings] == [1, 2, 4]


# --- nesting depth ---------------------------------------------------------------------------

_DEEP = "[" * 100 + "]" * 100  # deeper than safejson.MAX_DEPTH (64)


def test_a_jsonl_line_nested_too_deep_is_a_row_error_and_the_rest_go_in(user: Any) -> None:
    lines: list[Any] = [posting_row(1), '{"id": "2", "title": "Deep", "x": ' + _DEEP + "}"]
    lines.append("[" * 100_000)  # json.loads alone dies of a RecursionError on this one
    lines.append(posting_row(4))

    postings = _list(user, "jobs.jsonl", postings_jsonl(lines))

    assert [p.invalid_reasons for p in postings] == [
        [],
        ["line 2: nested deeper than 64 levels"],
        ["line 3: nested deeper than 64 levels"],
        [],
    ]


def test_a_json_element_nested_too_deep_is_a_row_error_and_the_rest_go_in(user: Any) -> None:
    data = postings_json([posting_row(1), {"id": "2", "title": "Deep", "x": json.loads(_DEEP)}])
    data = data[:-1] + b", " + json.dumps(posting_row(3)).encode() + b"]"

    postings = _list(user, "jobs.json", data)

    assert [p.invalid_reasons for p in postings] == [
        [],
        ["row 2: nested deeper than 64 levels"],
        [],
    ]


@pytest.mark.parametrize("name", ["deep.json", "deep.txt"])
def test_a_json_file_of_200kb_of_brackets_is_refused_whole_at_once(name: str) -> None:
    # It grew the web process to 23 GB: ijson's prefixes grow with the square of the depth.
    data = b"[" * 200_000
    fmt = upload_format(name, data[:4096])

    report = upload_check(io.BytesIO(data), kind="file", fmt=fmt)

    assert report.error == ("The JSON file is nested deeper than 512 levels: it cannot be read.")


def test_a_json_file_with_a_lone_surrogate_escape_is_refused_with_a_message() -> None:
    data = b'[{"id": "1", "title": "A"}, {"id": "2", "title": "\\udc00"}]'

    report = upload_check(io.BytesIO(data), kind="file", fmt="json")

    assert report.error == (
        "The JSON file is not valid after row 1: a \\u escape is not a character."
    )


def test_the_check_of_a_url_list_refuses_a_deep_element_as_a_row() -> None:
    data = json.dumps(["https://a.example/1", json.loads(_DEEP), "https://a.example/3"])

    report = upload_check(io.BytesIO(data.encode()), kind="urls", fmt="json")

    assert (report.good, report.bad) == (2, 1)
    assert [str(e) for e in report.errors] == ["row 2: nested deeper than 64 levels"]


# --- control characters and field lengths ------------------------------------------------------


def test_nul_and_control_characters_are_dropped_from_every_format(user: Any) -> None:
    rows = [posting_row(1, title="Ch\x00ef\x07", description="Salt\x00 & \x1bpepper")]
    files = {
        "jobs.csv": postings_csv(rows),
        "jobs.json": postings_json(rows),
        "jobs.jsonl": postings_jsonl(rows),  # "\u0000" escapes, as json.dumps writes them
        "raw.jsonl": postings_jsonl(rows).replace(b"\\u0000", b"\x00"),  # a raw NUL byte
    }
    for name, data in files.items():
        (posting,) = _list(user, name, data)

        assert posting.invalid_reasons == [], name
        assert posting.title == "Chef", name
        assert posting.description_html == "<p>Salt &amp; pepper</p>", name


def test_a_lone_surrogate_becomes_a_replacement_character(user: Any) -> None:
    (posting,) = _list(user, "jobs.jsonl", b'{"id": "1", "title": "Chef \\udc00"}\n')

    assert posting.title == "Chef \ufffd" and not posting.invalid_reasons


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_a_description_over_the_cap_is_a_row_error_naming_it(
    user: Any, settings: Any, fmt: str
) -> None:
    settings.INTAKE_DESCRIPTION_MAX_CHARS = 1000
    rows = [
        posting_row(1, description="x" * 1001, requirements=""),
        posting_row(2, description="y" * 900, requirements=""),
        posting_row(3, description="Short.", requirements="z" * 2000),
    ]

    postings = _list(user, f"jobs.{fmt}", postings_file(rows, fmt))

    label = "line" if fmt == "jsonl" else "row"
    assert [p.invalid_reasons for p in postings] == [
        [f"{label} 1: description is longer than 1,000 characters"],
        [],
        [f"{label} 3: requirements is longer than 1,000 characters"],
    ]
    assert postings[0].description_html == ""  # not kept
    report = upload_check(io.BytesIO(postings_file(rows, fmt)), kind="file", fmt=fmt)
    assert [(e.row, e.field) for e in report.errors] == [(1, "description"), (3, "requirements")]


def test_a_description_nested_too_deep_to_parse_is_a_row_error_naming_it(user: Any) -> None:
    # Sanitizing 100,000 nested <div> took 35 s, reading them as text 74 s more.
    rows = [posting_row(1, description="<div>" * 100_000), posting_row(2)]

    postings = _list(user, "jobs.jsonl", postings_jsonl(rows))

    assert [p.invalid_reasons for p in postings] == [
        ["line 1: description nests HTML elements deeper than 1,000"],
        [],
    ]


def test_a_10_mb_csv_cell_is_a_row_error_and_the_other_rows_go_in(user: Any) -> None:
    rows = [posting_row(1), posting_row(2, description="word " * 2_000_000), posting_row(3)]

    postings = _list(user, "jobs.csv", postings_csv(rows))

    assert [p.invalid_reasons for p in postings] == [
        [],
        ["row 2: description is longer than 500,000 characters"],
        [],
    ]


def test_a_row_longer_than_the_row_limit_is_skipped_unread(user: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(readers, "ROW_MAX", 4096)
    long_row = posting_row(2, description="x" * 10_000)
    quoted = posting_row(3, description="a\n" + "y" * 5000 + "\nb")  # a multi-line cell
    rows = [posting_row(1), long_row, posting_row(4), quoted, posting_row(5)]

    csv_postings = _list(user, "jobs.csv", postings_csv(rows))
    jsonl_postings = _list(user, "jobs.jsonl", postings_jsonl(rows))

    assert [p.invalid_reasons for p in csv_postings] == [
        [],
        ["row 2: longer than 4,096 bytes: not read"],
        [],
        ["row 4: longer than 4,096 bytes: not read"],
        [],
    ]
    assert [p.external_id for p in csv_postings if not p.invalid_reasons] == [
        "F-000001",
        "F-000004",
        "F-000005",
    ]
    assert [p.invalid_reasons for p in jsonl_postings] == [
        [],
        ["line 2: longer than 4,096 bytes: not read"],
        [],
        ["line 4: longer than 4,096 bytes: not read"],
        [],
    ]


def test_a_json_file_with_a_value_over_the_stream_limit_is_refused_whole(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr("ingestion.safejson.STREAM_STRING_MAX", 4096)
    data = postings_json([posting_row(1), posting_row(2, description="x" * 10_000)])

    report = upload_check(io.BytesIO(data), kind="file", fmt="json")

    assert report.error == ("The JSON file has a value longer than 4,096 bytes: it cannot be read.")


def test_plain_text_descriptions_become_escaped_paragraphs(user: Any) -> None:
    row = {"id": "1", "title": "Chef", "description": "Salt & pepper <3\nevery day\n\nApply"}

    (posting,) = _list(user, "jobs.jsonl", postings_jsonl([row]))

    assert posting.description_html == "<p>Salt &amp; pepper &lt;3<br>every day</p><p>Apply</p>"


def test_a_salary_text_is_kept_and_read_for_amounts(user: Any) -> None:
    row = {"id": "1", "title": "Chef", "salary": "$85k – $95k per year"}

    (posting,) = _list(user, "jobs.jsonl", postings_jsonl([row]))

    assert posting.salary_text == "$85k – $95k per year"
    assert (posting.salary_min, posting.salary_max) == (Decimal("85000"), Decimal("95000"))
    assert (posting.salary_currency, posting.salary_period) == ("USD", "year")


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_a_generated_multi_chunk_file_is_listed_whole(user: Any, tmp_path: Any, fmt: str) -> None:
    path = generate_postings_file(1200, fmt, path=tmp_path / f"jobs.{fmt}")
    assert path.stat().st_size > 2 * MIB
    source = _source(user, identifier=path.name)
    with path.open("rb") as fileobj:
        upload_store(source=source, name=path.name, fileobj=fileobj)

    with Fetcher(store=False) as fetcher:
        postings = list(FileAdapter(source, fetcher).list_postings())

    assert len(postings) == 1200
    assert postings[-1].external_id == "F-001200"
    assert not any(p.invalid_reasons for p in postings)
    assert len({p.description_html for p in postings}) == 1200
