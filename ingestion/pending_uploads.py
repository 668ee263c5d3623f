"""A chosen file kept between two requests of the source form: when the form comes back (row
errors to confirm with "Save anyway", a field to fix), the browser has forgotten the file, so
the server keeps it under a random token for INTAKE_PENDING_UPLOAD_TTL seconds and the form
carries the token instead of asking for the file again.

On disk under VAR_DIR/pending-uploads/<owner id>-<token>/<file name>: a file may be as large as
INTAKE_UPLOAD_MAX_BYTES, too large for the cache. The owner id in the path means a token is
worth nothing to another user. Every keep sweeps away what is older than the TTL, and an owner
keeps at most KEEP_PER_OWNER files (the oldest go first), so repeated round trips cannot fill the
disk within the TTL. With several
web machines, the form's second request must reach the same machine's disk (or VAR_DIR be
shared).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import time
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
_UNSAFE_NAME = re.compile(r"[^\w.() -]+")
NAME_MAX = 200
# Enough for a form open in a few tabs at once.
KEEP_PER_OWNER = 3


def _root() -> Path:
    return Path(settings.VAR_DIR) / "pending-uploads"


def _dir(owner_id: int, token: str) -> Path | None:
    if not TOKEN_RE.match(token or ""):
        return None
    return _root() / f"{int(owner_id)}-{token}"


def _sweep() -> None:
    cutoff = time.time() - settings.INTAKE_PENDING_UPLOAD_TTL
    root = _root()
    if not root.is_dir():
        return
    for entry in root.iterdir():
        try:
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except FileNotFoundError:
            pass  # swept by another request meanwhile


def _make_room(owner_id: int) -> None:
    root = _root()
    if not root.is_dir():
        return
    mine = []
    for entry in root.glob(f"{int(owner_id)}-*"):
        with contextlib.suppress(FileNotFoundError):  # swept by another request meanwhile
            mine.append((entry.stat().st_mtime, entry))
    mine.sort()
    for _, entry in mine[: max(0, len(mine) - (KEEP_PER_OWNER - 1))]:
        shutil.rmtree(entry, ignore_errors=True)


def pending_upload_keep(*, owner_id: int, upload: UploadedFile) -> str:
    """Keep a copy of `upload` for `owner_id`; the token that opens it again."""
    _sweep()
    _make_room(owner_id)
    token = secrets.token_urlsafe(16)
    folder = _dir(owner_id, token)
    assert folder is not None
    folder.mkdir(parents=True)
    name = _UNSAFE_NAME.sub("_", Path(upload.name or "upload").name)[:NAME_MAX] or "upload"
    upload.seek(0)
    with (folder / name).open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    upload.seek(0)
    return token


def pending_upload_open(*, owner_id: int, token: str) -> UploadedFile | None:
    """The kept file (open for reading; the caller closes it), or None when the token is
    malformed, another user's, or expired."""
    folder = _dir(owner_id, token)
    if folder is None or not folder.is_dir():
        return None
    if folder.stat().st_mtime < time.time() - settings.INTAKE_PENDING_UPLOAD_TTL:
        return None
    files = [path for path in folder.iterdir() if path.is_file()]
    if len(files) != 1:
        return None
    path = files[0]
    return UploadedFile(
        file=path.open("rb"), name=path.name, content_type=None, size=path.stat().st_size
    )


def pending_upload_discard(*, owner_id: int, token: str) -> None:
    folder = _dir(owner_id, token)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
