"""Bounded JSON: the depth measured on raw bytes agrees with a plain reading of the text, in
pieces of any size; deep documents are refused before anything recurses or builds prefixes."""

from __future__ import annotations

import io
import json
import random
import resource
import time
from typing import Any

import pytest

from ingestion import safejson
from ingestion.safejson import MAX_DEPTH, STREAM_MAX_DEPTH, JsonTooDeep


def _reference(data: bytes) -> tuple[int, int]:
    """The nesting depth of JSON text and its longest string (an escape pair counting as one
    byte), one byte at a time: the definition."""
    depth = deepest = longest = length = 0
    in_string = escaped = False
    for byte in data:
        char = chr(byte)
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
                length += 1
            elif char == '"':
                in_string = False
                longest = max(longest, length)
            else:
                length += 1
        elif char == '"':
            in_string, length = True, 0
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest, longest


def _random_value(rnd: random.Random, level: int = 0) -> Any:
    # Strings full of brackets, quotes and backslashes: what a byte-level count could trip on.
    tricky = ['a"b', "x\\y", "[{", "}]\\", '\\"[', "\\\\", '"""', "ü[", "\n]"]
    roll = rnd.random()
    if level > 9 or roll < 0.35:
        return rnd.choice([*tricky, 1, None, 2.5, True])
    if roll < 0.65:
        return [_random_value(rnd, level + 1) for _ in range(rnd.randint(0, 3))]
    keys = ["k", "[", '\\"{', "]]"]
    count = rnd.randint(0, 3)
    return {f"{rnd.choice(keys)}{i}": _random_value(rnd, level + 1) for i in range(count)}


def _scan_in_pieces(data: bytes, size: int, string_limit: int | None) -> tuple[int, int, bool]:
    scanner = safejson._DepthScanner(string_limit)
    deepest = 0
    for start in range(0, len(data), size):
        deepest = max(deepest, scanner.feed(data[start : start + size]))
    return deepest, scanner.depth, scanner.string_too_long


def test_the_measured_depth_and_string_lengths_are_the_texts_whatever_the_pieces() -> None:
    rnd = random.Random(11)
    for _ in range(600):
        text = json.dumps(_random_value(rnd), ensure_ascii=rnd.random() < 0.5)
        data = text.encode()
        deepest, longest = _reference(data)
        for size in (1, 2, 3, 7, 64, len(data) or 1):
            for limit in (longest - 1, longest, None):
                found = _scan_in_pieces(data, size, limit)
                too_long = limit is not None and longest > limit
                assert found == (deepest, 0, too_long), (text, size, limit)


def test_items_refuses_a_string_longer_than_the_limit_in_any_pieces() -> None:
    ok = json.dumps(["a" * 90 + "\n" * 10, "x"]).encode()  # 100 bytes with escapes as one
    long = json.dumps(["a" * 90 + "\n" * 11, "x"]).encode()
    for read_size in (1, 7, 64, 65536):
        assert len(list(safejson.items(_Trickle(ok, read_size), "item", string_limit=100))) == 2
        with pytest.raises(safejson.JsonTooLong, match="a value longer than 100 bytes"):
            list(safejson.items(_Trickle(long, read_size), "item", string_limit=100))


def test_items_drops_nul_bytes_which_would_stop_the_whole_document() -> None:
    document = b'[{"a": "x\x00y"}, {"b": 2}]'

    assert [value for value, _ in safejson.items(io.BytesIO(document), "item")] == [
        {"a": "xy"},
        {"b": 2},
    ]


def test_loads_refuses_a_document_deeper_than_the_limit_and_reads_one_at_it() -> None:
    at_limit = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert safejson.loads(at_limit) == json.loads(at_limit)

    with pytest.raises(JsonTooDeep, match=f"nested deeper than {MAX_DEPTH} levels"):
        safejson.loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))


def test_loads_counts_no_bracket_inside_a_string() -> None:
    text = json.dumps({"text": "[" * 5000, "more": ['\\"[[[' * 100]})

    assert safejson.loads(text) == json.loads(text)


def test_loads_refuses_100000_brackets_at_once_without_recursing() -> None:
    # json.loads itself dies of a RecursionError here (and in C code, of worse).
    with pytest.raises(JsonTooDeep):
        safejson.loads(b"[" * 100_000)
    with pytest.raises(JsonTooDeep):
        safejson.loads('{"a":' * 100_000)


def test_loads_is_a_value_error_for_callers_that_catch_broken_json() -> None:
    with pytest.raises(ValueError):
        safejson.loads("[" * 1000)


def test_items_refuses_only_the_element_nested_too_deep() -> None:
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    at_limit = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    document = f'[{{"a": 1}}, {deep}, {{"b": 2}}, {at_limit}, "s"]'.encode()

    for read_size in (1, 5, 64, 65536):
        found = list(safejson.items(_Trickle(document, read_size), "item"))
        assert [problem for _, problem in found] == [
            "",
            f"nested deeper than {MAX_DEPTH} levels",
            "",
            "",
            "",
        ], read_size
        assert found[0][0] == {"a": 1} and found[2][0] == {"b": 2} and found[4][0] == "s"


def test_items_under_a_key_counts_the_levels_above_the_elements() -> None:
    inside = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    document = json.dumps({"meta": 1, "jobs": [{"x": json.loads(inside)}, {"y": 1}]}).encode()

    assert [problem for _, problem in safejson.items(io.BytesIO(document), "jobs.item")] == [
        "",
        "",
    ]
    deeper = document.replace(b"[[", b"[[[", 1).replace(b"]]", b"]]]", 1)
    assert [problem for _, problem in safejson.items(io.BytesIO(deeper), "jobs.item")][0] != ""


def test_items_stops_a_document_deeper_than_the_stream_limit_quickly_and_small() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()

    # 200 KB of "[": ijson alone wants tens of GB for its prefixes.
    with pytest.raises(JsonTooDeep, match=f"nested deeper than {STREAM_MAX_DEPTH} levels"):
        list(safejson.items(io.BytesIO(b"[" * 200_000), "item"))

    assert time.monotonic() - started < 5
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 50


def test_value_depth_exceeds_walks_without_recursion() -> None:
    value: Any = 1
    for _ in range(5000):
        value = [value]

    assert safejson.value_depth_exceeds(value, MAX_DEPTH)
    assert not safejson.value_depth_exceeds({"a": [[1]]}, 3)
    assert safejson.value_depth_exceeds({"a": [[1]]}, 2)
    assert not safejson.value_depth_exceeds("text", 0)


class _Trickle:
    """A reader that answers at most `size` bytes a read."""

    def __init__(self, data: bytes, size: int) -> None:
        self._file = io.BytesIO(data)
        self._size = size

    def read(self, size: int = -1) -> bytes:
        return self._file.read(self._size if size < 0 else min(size, self._size))
