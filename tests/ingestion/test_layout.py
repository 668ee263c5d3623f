"""The shape of the ingestion app: its modules import one another without a loop. A loop
hides misplaced code (storage reaching up into the parsers it serves) and makes each side
unreadable without the other."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.runs.test_layout import find_loop

INGESTION = Path(__file__).resolve().parents[2] / "ingestion"
# Imports left out of the graph, each a loop another step of issue 13 removes: delete the
# entry when it lands. (process.py publishing through the orchestrator: the store step.)
PENDING = {("ingestion.pipeline.process", "ingestion.pipeline.orchestrator")}


def module_name(path: Path) -> str:
    parts = path.relative_to(INGESTION.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def ingestion_imports(path: Path, modules: set[str]) -> set[str]:
    """The ingestion modules `path` imports, wherever the statement is (at the top, inside a
    function, under TYPE_CHECKING). `from package import name` counts as the module
    `package.name` when there is one, else as the package."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "ingestion")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "ingestion":
                continue
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
    return found & modules


def import_graph() -> dict[str, set[str]]:
    paths = [p for p in INGESTION.rglob("*.py") if "migrations" not in p.parts]
    modules = {module_name(path) for path in paths}
    graph = {module_name(path): ingestion_imports(path, modules) for path in paths}
    for module, imported in graph.items():
        imported.discard(module)
    for module, imported_module in PENDING:
        graph.get(module, set()).discard(imported_module)
    return graph


def test_the_ingestion_modules_import_one_another_without_a_loop():
    graph = import_graph()
    assert graph["ingestion.adapters.files"]  # the reader found the imports
    loop = find_loop(graph)
    assert loop is None, " → ".join(loop or [])


def test_uploads_stores_bytes_and_knows_no_adapter():
    imported = import_graph()["ingestion.uploads"]
    assert not {m for m in imported if m.startswith(("ingestion.adapters", "ingestion.pipeline"))}
