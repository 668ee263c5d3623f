"""Text made storable: control characters out, lone surrogates replaced, clean text untouched."""

from __future__ import annotations

import pytest

from ingestion.textclean import clean_text, has_unsafe


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Chef\x00 de partie", "Chef de partie"),
        ("a\x01b\x07c\x1bd\x1fe", "abcde"),
        ("keep\ttabs\nnew lines\r\nand returns", "keep\ttabs\nnew lines\r\nand returns"),
        ("lone \udc00 low, lone \ud800 high", "lone \ufffd low, lone \ufffd high"),
        ("déjà vu \x00 😀", "déjà vu  😀"),
        ("\x7f and \x85 are not C0", "\x7f and \x85 are not C0"),
    ],
)
def test_clean_text_drops_c0_controls_and_replaces_lone_surrogates(text, expected):
    assert clean_text(text) == expected
    assert has_unsafe(text) == (text != expected)


def test_clean_text_returns_clean_text_itself():
    text = "Nothing to clean here: ünïcode and\ttabs."
    assert clean_text(text) is text
