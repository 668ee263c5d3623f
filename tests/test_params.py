"""The strict request-parameter parsers (project/params.py): what each takes, what it refuses,
and how Params applies them strictly (400s, refusals) or leniently (pages)."""

from __future__ import annotations

from datetime import date

import pytest
from django.http import QueryDict

from project.params import (
    BIGINT_MAX,
    ParamError,
    Params,
    parse_choice,
    parse_date,
    parse_flag,
    parse_float,
    parse_int,
    parse_text,
)


@pytest.mark.parametrize(
    "raw, value", [("0", 0), ("42", 42), (" 7 ", 7), (str(BIGINT_MAX), BIGINT_MAX)]
)
def test_a_whole_number_in_ascii_digits_is_read(raw, value):
    assert parse_int(raw, name="n") == value


@pytest.mark.parametrize(
    "raw",
    [
        "²",
        "¹²",
        "٣",
        "１",
        "-1",
        "+1",
        "1.0",
        "1e3",
        "0x10",
        "",
        " ",
        "1 2",
        "9223372036854775808",
        "1" * 30,
        "\x00",
        "1\x00",
    ],
)
def test_anything_else_is_refused_with_the_parameters_name_and_range(raw):
    with pytest.raises(ParamError) as refused:
        parse_int(raw, name="page", minimum=1, maximum=1000)
    assert str(refused.value).startswith("page must be a whole number from 1 to 1,000, not ")
    assert refused.value.name == "page"


def test_a_number_outside_the_range_is_refused():
    with pytest.raises(ParamError):
        parse_int("0", name="page", minimum=1)
    with pytest.raises(ParamError):
        parse_int("11", name="page", maximum=10)


@pytest.mark.parametrize("raw, value", [("0", 0.0), ("0.25", 0.25), (".5", 0.5), ("10", 10.0)])
def test_a_plain_decimal_is_read(raw, value):
    assert parse_float(raw, name="d", minimum=0, maximum=10) == value


@pytest.mark.parametrize("raw", ["nan", "inf", "-1", "1e1", "10.5", "²", "1,5", "-0"])
def test_a_decimal_that_is_not_plain_or_in_range_is_refused(raw):
    with pytest.raises(ParamError, match="d must be a number from 0 to 10"):
        parse_float(raw, name="d", minimum=0, maximum=10)


def test_a_date_is_read_within_its_range():
    assert parse_date("2024-02-29", name="d") == date(2024, 2, 29)
    assert parse_date("1900-01-01", name="d") == date(1900, 1, 1)
    assert parse_date("2999-12-31", name="d") == date(2999, 12, 31)


@pytest.mark.parametrize(
    "raw",
    [
        "9999-12-31",
        "0001-01-01",
        "2024-02-30",
        "2024-13-01",
        "2024-1-1",
        "20240101",
        "yesterday",
        "２０２４-01-01",
        "2024-01-01\x00",
    ],
)
def test_a_far_impossible_or_misspelt_date_is_refused(raw):
    with pytest.raises(ParamError, match=r"posted_to must be a date \(YYYY-MM-DD\) from 1900"):
        parse_date(raw, name="posted_to")


def test_a_choice_is_one_of_the_known_values_exactly():
    assert parse_choice("ready", name="status", choices=["ready", "error"]) == "ready"
    for raw in ("READY", " ready", "ready\x00", "\x00"):
        with pytest.raises(ParamError, match="status must be one of error, ready"):
            parse_choice(raw, name="status", choices=["ready", "error"])


def test_text_takes_any_script_but_no_control_character_and_no_more_than_its_length():
    assert parse_text("Zürich 東京 – remote", name="q") == "Zürich 東京 – remote"
    for raw in ("a\x00b", "a\nb", "\x7f", "\x9b"):
        with pytest.raises(ParamError, match="q must not contain control characters"):
            parse_text(raw, name="q")
    with pytest.raises(ParamError, match="q must be at most 5 characters long"):
        parse_text("x" * 6, name="q", max_length=5)


def test_a_flag_takes_the_usual_spellings():
    assert parse_flag("1", name="f") and parse_flag("Yes", name="f") and parse_flag("on", name="f")
    assert not parse_flag("0", name="f") and not parse_flag("false", name="f")
    with pytest.raises(ParamError, match="f must be 1 or 0"):
        parse_flag("²", name="f")


def test_lenient_params_fall_back_to_the_default_and_keep_the_message():
    params = Params(QueryDict("page=%C2%B2&status=bogus&q=ok&source=3"), strict=False)
    assert params.page() == 1
    assert params.choice("status", ["ready"]) == ""
    assert params.text("q") == "ok"
    assert params.object_id("source") == 3
    assert params.object_id("run") is None
    assert [m.split(" must")[0] for m in params.ignored] == ["page", "status"]


def test_strict_params_raise_at_the_first_bad_value():
    params = Params(QueryDict("after=%C2%B2"), strict=True)
    with pytest.raises(ParamError, match="after must be a whole number"):
        params.integer("after", 0)
    assert params.integer("missing", 5) == 5


def test_an_empty_value_is_the_default():
    params = Params(QueryDict("page=&q=&after="), strict=True)
    assert params.page() == 1 and params.text("q") == "" and params.integer("after", 0) == 0


def test_ids_keep_order_drop_repeats_and_are_bounded():
    lenient = Params(QueryDict("source=3&source=²&source=1&source=3"), strict=False)
    assert lenient.ids("source") == [3, 1]
    assert len(lenient.ignored) == 1
    with pytest.raises(ParamError):
        Params(QueryDict("source=3&source=²"), strict=True).ids("source")
    many = QueryDict("&".join(f"source={i}" for i in range(1, 6)))
    with pytest.raises(ParamError, match="At most 3 source values"):
        Params(many, strict=True).ids("source", limit=3)
    assert Params(many, strict=False).ids("source", limit=3) == [1, 2, 3]
