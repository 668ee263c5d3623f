#!/usr/bin/env python3
"""Bootstrap Intake with nothing but Python 3.11+: make the virtualenv, install the
requirements when they changed, then hand over to the project's own commands.

    python3 intake.py start [--host 127.0.0.1] [--port 8000] [--workers 2]
    python3 intake.py test [pytest args...]

Standard library only: this runs before any package is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
REQUIREMENTS = ROOT / "requirements.txt"
# Lives inside the venv so a fresh venv never inherits a stale stamp.
STAMP_NAME = ".intake-requirements.sha256"

DESCRIPTION = """\
Bootstrap and run Intake. Creates the virtualenv if it is missing (default .venv next to
this file, or the path in $INTAKE_VENV), installs requirements.txt into it whenever that file
changed since the last install, then runs the command inside the virtualenv.

With DATABASE_URL unset, data lives in SQLite under var/; with REDIS_URL unset, `start`
runs a private valkey-server on a Unix socket under var/ (see .env.example)."""

EPILOG = """\
commands:
  start   run migrations, create a first admin login if there is no superuser, then run the
          web server, the RQ workers and the cron scheduler (and the embedded valkey-server
          when REDIS_URL is unset) until Ctrl-C. Options: see `intake.py start --help`.
  test    run pytest; every argument after `test` goes to pytest unchanged
          (`intake.py test -x -k login`, `intake.py test -m browser`, `intake.py test --help`
          shows pytest's help). The exit code is pytest's.

environment:
  INTAKE_VENV   use this virtualenv instead of .venv (created there if missing)"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="intake.py",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="{start,test}")
    start = commands.add_parser(
        "start",
        help="run Intake until Ctrl-C",
        description="Bootstrap the virtualenv, then run `manage.py start`: migrate, ensure a "
        "login, and supervise the web server, RQ workers, cron scheduler and (with REDIS_URL "
        "unset) the embedded valkey-server as one process tree. Ctrl-C stops it all.",
    )
    start.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default: %(default)s)"
    )
    start.add_argument("--port", type=port_number, default=8000, help="port (default: %(default)s)")
    start.add_argument(
        "--workers", type=positive_int, default=2, help="RQ worker processes (default: %(default)s)"
    )
    # Listed for --help only: `test` is dispatched before argparse sees its arguments,
    # so that pytest options like -x or -k are never mistaken for ours.
    commands.add_parser("test", help="run the test suite with pytest (arguments go to pytest)")
    return parser


def positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def port_number(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value


def venv_dir() -> Path:
    configured = os.environ.get("INTAKE_VENV", "").strip()
    return Path(configured).expanduser().absolute() if configured else ROOT / ".venv"


def fail(message: str, code: int = 1) -> None:
    print(f"intake.py: {message}", file=sys.stderr)
    raise SystemExit(code)


def ensure_venv(venv: Path) -> Path:
    """Create the virtualenv if it has no interpreter yet; return its python."""
    python = venv / "bin" / "python"
    if python.exists():
        return python
    print(f"Creating the virtualenv in {venv} ...", flush=True)
    result = subprocess.run([sys.executable, "-m", "venv", str(venv)])
    if result.returncode != 0 or not python.exists():
        # Debian/Ubuntu ship venv without ensurepip unless python3-venv is installed.
        fail(
            f"could not create a virtualenv in {venv}. On Debian or Ubuntu install the "
            "venv module first: sudo apt-get install python3-venv",
            result.returncode or 1,
        )
    return python


def requirements_digest() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def ensure_requirements(venv: Path, python: Path) -> None:
    """Install requirements.txt, but only when it changed since the last successful install."""
    stamp = venv / STAMP_NAME
    digest = requirements_digest()
    if stamp.exists() and stamp.read_text().strip() == digest:
        return
    print("Installing requirements.txt into the virtualenv (the first time takes a while) ...")
    sys.stdout.flush()
    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    result = subprocess.run([*command, "-r", str(REQUIREMENTS)], cwd=ROOT)
    if result.returncode != 0:
        # No stamp: the next run tries again instead of trusting a half-installed venv.
        fail("installing requirements.txt failed (see pip's output above)", result.returncode)
    stamp.write_text(digest + "\n")


def bootstrap() -> Path:
    venv = venv_dir()
    python = ensure_venv(venv)
    ensure_requirements(venv, python)
    return python


def exec_in_venv(python: Path, args: list[str]) -> None:
    """Replace this process, so signals (Ctrl-C, SIGTERM) and the exit code pass straight
    through to the command: there is no wrapper process left to get in the way."""
    os.chdir(ROOT)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(str(python), [str(python), *args])


def main(argv: list[str]) -> None:
    # Run by whatever python3 is on PATH, which may be older than the project targets.
    if sys.version_info < (3, 11):  # noqa: UP036
        fail(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}")
    if argv and argv[0] == "test":
        exec_in_venv(bootstrap(), ["-m", "pytest", *argv[1:]])
        return
    parser = build_parser()
    options = parser.parse_args(argv)
    if options.command != "start":
        parser.print_help()
        raise SystemExit(2)
    python = bootstrap()
    exec_in_venv(
        python,
        [
            str(ROOT / "manage.py"),
            "start",
            "--host",
            options.host,
            "--port",
            str(options.port),
            "--workers",
            str(options.workers),
        ],
    )


if __name__ == "__main__":
    main(sys.argv[1:])
