"""Text from uploads and boards made storable.

PostgreSQL refuses NUL in text (one posting with "\\u0000" made the COPY of its batch fail,
and with it the whole source), and a lone surrogate ("\\udc00" in JSON) cannot be encoded as
UTF-8 at all. Neither means anything in a posting, nor do the other C0 control characters
(tab, new line and carriage return excepted): they are dropped, and a lone surrogate becomes
U+FFFD, so the rest of the posting is kept.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_CONTROL_BYTES = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])


def _replace(match: re.Match[str]) -> str:
    return "" if match.group() < "\x20" else "\ufffd"


def has_unsafe(text: str) -> bool:
    """Whether clean_text would change `text`. Checked on the UTF-8 bytes, several times
    faster than a regex search: encoding fails on a lone surrogate, and a C0 control is a
    byte of its own in UTF-8."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return len(data.translate(None, _CONTROL_BYTES)) != len(data)


def clean_text(text: str) -> str:
    """`text` without C0 control characters (but tab, LF, CR) and with U+FFFD for each lone
    surrogate; the same object when there is nothing to clean (the usual case)."""
    if not has_unsafe(text):
        return text
    return _UNSAFE.sub(_replace, text)
