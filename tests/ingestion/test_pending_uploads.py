"""Files kept between two rounds of the source form: per owner, for a while, then gone."""

from __future__ import annotations

import os
import time

from django.core.files.uploadedfile import SimpleUploadedFile

from ingestion.pending_uploads import (
    pending_upload_discard,
    pending_upload_keep,
    pending_upload_open,
)


def test_a_kept_file_opens_for_its_owner_only_with_its_name_and_bytes():
    token = pending_upload_keep(owner_id=7, upload=SimpleUploadedFile("../jobs 1.csv", b"a,b\n"))
    kept = pending_upload_open(owner_id=7, token=token)
    assert kept is not None
    with kept:
        assert kept.name == "jobs 1.csv" and kept.read() == b"a,b\n" and kept.size == 4
    assert pending_upload_open(owner_id=8, token=token) is None
    pending_upload_discard(owner_id=7, token=token)
    assert pending_upload_open(owner_id=7, token=token) is None


def test_a_malformed_token_opens_nothing():
    for token in ("", "../../etc", "x" * 22 + "/", "a" * 200):
        assert pending_upload_open(owner_id=7, token=token) is None


def test_an_expired_file_is_refused_and_swept_by_the_next_keep(settings):
    token = pending_upload_keep(owner_id=7, upload=SimpleUploadedFile("a.csv", b"x"))
    folder = settings.VAR_DIR / "pending-uploads" / f"7-{token}"
    old = time.time() - settings.INTAKE_PENDING_UPLOAD_TTL - 5
    os.utime(folder, (old, old))
    assert pending_upload_open(owner_id=7, token=token) is None
    pending_upload_keep(owner_id=7, upload=SimpleUploadedFile("b.csv", b"y"))
    assert not folder.exists()
