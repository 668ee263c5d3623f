"""Production settings: `check --deploy` is clean with the environment docs/operations.md
documents."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

OPERATIONS = ROOT / "docs" / "operations.md"

# --- check --deploy ---------------------------------------------------------------------------


def documented_production_environment() -> dict[str, str]:
    """The `export NAME=value` lines of the first sh block under "## Production settings"."""
    text = OPERATIONS.read_text()
    section = text.split("## Production settings", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    found = {}
    for line in block.splitlines():
        match = re.match(r"export (\w+)=(\S*)", line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def check_deploy(tmp_path: Path, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Only what a fresh shell has, plus the variables under test: nothing from the test
    # session's own environment (its DEBUG, DATABASE_URL ...) leaks in.
    env = {"PATH": os.environ.get("PATH", ""), "INTAKE_VAR_DIR": str(tmp_path), **extra}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_documented_production_environment_is_complete():
    documented = documented_production_environment()
    for name in (
        "DEBUG",
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "SESSION_COOKIE_SECURE",
        "SECURE_PROXY_SSL_HEADER",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
    ):
        assert name in documented, name


def test_check_deploy_reports_nothing_with_the_documented_production_environment(tmp_path):
    env = documented_production_environment()
    # The docs' placeholder, replaced as they say: 50+ random characters.
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    env["DATABASE_URL"] = "postgres://intake:secret@db.internal:5432/intake"
    env["REDIS_URL"] = "redis://redis.internal:6379/0"
    result = check_deploy(tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_warns_without_it(tmp_path):
    result = check_deploy(tmp_path, {})
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr + result.stdout
