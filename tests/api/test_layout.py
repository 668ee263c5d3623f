"""The API stands above the apps it exposes: runs/ and ingestion/ never import it (their
services are the one code path; the API is one more door), and its own modules import one
another without a loop."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.runs.test_layout import find_loop

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_runs_and_ingestion_never_import_the_api():
    for app in ("runs", "ingestion"):
        for path in (ROOT / app).rglob("*.py"):
            api = {m for m in imported_modules(path) if m == "api" or m.startswith("api.")}
            assert not api, f"{path.relative_to(ROOT)} imports {sorted(api)}"


def test_the_api_modules_import_one_another_without_a_loop():
    paths = [p for p in (ROOT / "api").glob("*.py") if p.stem != "__init__"]
    names = {f"api.{p.stem}" for p in paths}
    graph = {f"api.{p.stem}": imported_modules(p) & names for p in paths}
    assert graph["api.main"]  # the reader found the imports
    loop = find_loop(graph)
    assert loop is None, " → ".join(loop or [])
