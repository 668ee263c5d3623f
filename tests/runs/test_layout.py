"""The shape of the runs app: its modules import one another without a loop, so each layer
can be read (and changed) knowing only the ones below it."""

from __future__ import annotations

import ast
from pathlib import Path

from django.utils.module_loading import import_string

from runs import queue, tasks

RUNS = Path(__file__).resolve().parents[2] / "runs"


def runs_imports(path: Path) -> set[str]:
    """The runs modules `path` imports, wherever the statement is: at the top, inside a
    function, or under TYPE_CHECKING (a loop of annotations is still a loop to a reader)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("runs."))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "runs":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("runs."):
                found.add(node.module.split(".")[1])
    return found


def find_loop(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        for imported in sorted(graph.get(module, ())):
            loop = visit(imported, [*path, module])
            if loop:
                return loop
        done.add(module)
        return None

    for module in sorted(graph):
        loop = visit(module, [])
        if loop:
            return loop
    return None


def test_the_runs_modules_import_one_another_without_a_loop():
    graph = {path.stem: runs_imports(path) for path in RUNS.glob("*.py")}
    assert graph["services"] and graph["tasks"]  # the reader found the imports
    loop = find_loop(graph)
    assert loop is None, " → ".join(loop or [])


def test_the_queue_names_the_tasks_that_exist():
    # runs.queue names the tasks by their dotted paths, which RQ imports in the worker.
    assert import_string(queue.EXECUTE_RUN) is tasks.execute_run
    assert import_string(queue.EXECUTE_PART) is tasks.execute_part
