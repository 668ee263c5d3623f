"""Parser errors in plain words, for the people who uploaded the file."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from ingestion.parse_errors import plain_parse_error


@pytest.mark.parametrize(
    ("message", "plain"),
    [
        (
            "The JSON file is not valid after row 0: parse error: premature EOF\n"
            "                                       \n"
            "                     (right here) ------^\n",
            "The JSON ends early, after row 0: a bracket or a quote is not closed.",
        ),
        (
            "The JSON file is not valid after row 1: parse error: after array element, I "
            "expect ',' or ']'\n   x} {\n   (right here) ------^\n",
            "The JSON is not valid after row 1: a comma is missing between two values.",
        ),
        (
            "not valid JSON: Expecting value: line 2 column 1 (char 31)",
            "not valid JSON: the line ends early (a bracket or a quote is not closed)",
        ),
        (
            "not valid JSON: Expecting property name enclosed in double quotes: line 1 "
            "column 2 (char 1)",
            "not valid JSON: a key is not text in double quotes (at character 2)",
        ),
        (
            "cannot be read: new-line character seen in unquoted field - do you need to open "
            "the file with newline=''?",
            "cannot be read: a line break inside a cell that is not in quotes",
        ),
        ("title is required", "title is required"),
        ("", ""),
    ],
)
def test_parser_wording_becomes_plain_words(message: str, plain: str):
    assert plain_parse_error(message) == plain


@pytest.mark.django_db
def test_the_upload_check_says_a_truncated_json_file_ends_early(user):
    client = Client()
    client.force_login(user)
    upload = SimpleUploadedFile("jobs.json", b'[{"external_id": "1", "title": "A"')
    response = client.post(
        reverse("ingestion:source_check_upload"),
        {"kind": "file", "upload": upload},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert "The JSON ends early, after row 0" in html
    assert "right here" not in html and "premature EOF" not in html
