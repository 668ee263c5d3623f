"""Files kept between two rounds of the source form: per owner, for a while, then gone."""

from __future__ import annotations

import os
import time

from django.core.files.uploadedfile import SimpleUploadedFile

from ingestion.pending_uploads import (
    KEEP_PER_OWNER,
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


def test_an_owner_keeps_a_few_files_at_most_the_oldest_going_first():
    tokens = []
    for n in range(KEEP_PER_OWNER + 2):
        tokens.append(pending_upload_keep(owner_id=7, upload=SimpleUploadedFile(f"{n}.csv", b"x")))
        time.sleep(0.01)  # distinct modification times
    other = pending_upload_keep(owner_id=8, upload=SimpleUploadedFile("o.csv", b"x"))
    opened = [pending_upload_open(owner_id=7, token=token) for token in tokens]
    for kept in opened:
        if kept is not None:
            kept.close()
    assert [kept is not None for kept in opened] == [False] * 2 + [True] * KEEP_PER_OWNER
    other_file = pending_upload_open(owner_id=8, token=other)
    assert other_file is not None
    other_file.close()
