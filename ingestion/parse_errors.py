"""Parser errors in plain words. The JSON and CSV parsers speak to programmers ("parse error:
premature EOF (right here) ------^", "Expecting ',' delimiter: line 2 column 1 (char 34)");
the user who uploaded a file needs to hear what is wrong with it and where.

`plain_parse_error` rewrites a message that carries such a phrase and leaves any other as it
is, so it can be applied to every message of an upload check.
"""

from __future__ import annotations

import re

# (what the parser says, matched case-insensitively, → the words for it). yajl (ijson's
# backend) and Python's json module for JSON; Python's csv module for CSV.
_JSON_WORDS: tuple[tuple[str, str], ...] = (
    (r"premature EOF|Unterminated string|Expecting value: line \d+ column \d+ \(char \d+\)$", ""),
    (
        r"after array element, I expect|Expecting ',' delimiter",
        "a comma is missing between two values",
    ),
    (
        r"after key and value, inside map, I expect",
        "a comma or a closing } is missing after a value",
    ),
    (
        r"object key and value must be separated by a colon|Expecting ':' delimiter",
        "a colon is missing after a key",
    ),
    (
        r"invalid object key|Expecting property name enclosed in double quotes",
        "a key is not text in double quotes",
    ),
    (
        r"invalid char in json text|unallowed token|Expecting value",
        "there is something that is not a JSON value (text must be in double quotes)",
    ),
    (r"invalid escape|invalid \\u|Invalid \\escape|Invalid \\u", "a text has a broken \\ escape"),
    (
        r"invalid control character|Invalid control character",
        "a text has a line break or control character inside its quotes",
    ),
    (r"trailing garbage|Extra data", "there is more text after the end of the JSON"),
)
_CSV_WORDS: tuple[tuple[str, str], ...] = (
    (
        r"unexpected end of data|EOF inside string",
        "a quoted cell is not closed before the file ends",
    ),
    (
        r"new-line character seen in unquoted field",
        "a line break inside a cell that is not in quotes",
    ),
    (r"field larger than field limit", "a cell is too long"),
    (r"expected .* after .*", 'a quote inside a quoted cell is not doubled (write "" for ")'),
)
_FILE_RE = re.compile(
    r"^The JSON file is not valid after row (?P<row>\d+): (?:parse error: )?(?P<why>[^\n]*)",
    re.DOTALL,
)
_LINE_RE = re.compile(
    r"^(?P<head>.*?not valid JSON: )(?P<why>.*?)"
    r"(?:: line (?P<line>\d+) column (?P<col>\d+) \(char \d+\))?$",
    re.DOTALL,
)
_CSV_RE = re.compile(r"^(?P<head>.*?cannot be read: )(?P<why>.*)$", re.DOTALL)


def _words(why: str, table: tuple[tuple[str, str], ...]) -> str | None:
    for pattern, words in table:
        if re.search(pattern, why, re.IGNORECASE):
            return words
    return None


def plain_parse_error(message: str) -> str:
    """`message` with a JSON or CSV parser's wording replaced by plain words."""
    if match := _FILE_RE.match(message):
        row = int(match["row"])
        words = _words(match["why"], _JSON_WORDS)
        if words == "":
            return f"The JSON ends early, after row {row:,}: a bracket or a quote is not closed."
        return f"The JSON is not valid after row {row:,}: {words or 'it cannot be read'}."
    if match := _LINE_RE.match(message):
        # A JSONL line is parsed alone: an error past its first line is at its very end.
        if match["line"] and int(match["line"]) > 1:
            return f"{match['head']}the line ends early (a bracket or a quote is not closed)"
        words = _words(match["why"], _JSON_WORDS)
        if words is not None:
            where = f" (at character {match['col']})" if match["col"] else ""
            return f"{match['head']}{words or 'the line ends early'}{where}"
    if match := _CSV_RE.match(message):
        words = _words(match["why"], _CSV_WORDS)
        if words:
            return f"{match['head']}{words}"
    return message
