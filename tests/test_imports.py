"""The package's modules import each other one way: no cycle, counting imports inside functions too
(they are how a cycle hides)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "consumer"


def imported_modules(path: Path) -> set[str]:
    """The modules of `consumer` that `path` imports anywhere in it."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name.split(".")[1] for name in names if name.startswith("consumer.")} - {path.stem}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (module → the modules it imports), None when there is none."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        for imported in sorted(graph.get(module, ())):
            if (cycle := visit(imported, [*path, module])) is not None:
                return cycle
        done.add(module)
        return None

    for module in sorted(graph):
        if (cycle := visit(module, [])) is not None:
            return cycle
    return None


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"app": {"cli"}, "cli": {"app"}}) == ["app", "cli", "app"]
    assert find_cycle({"app": {"eventhub"}, "cli": {"app"}, "eventhub": set()}) is None


def test_no_import_cycle_in_the_package() -> None:
    graph = {path.stem: imported_modules(path) for path in PACKAGE.glob("*.py")}
    assert "cli" in graph and "app" in graph["cli"]  # the graph is read at all
    assert find_cycle(graph) is None


#: The pure core: bytes → records → metric updates, with no I/O and no configuration loading.
PURE_CORE = ("pipeline", "metrics", "records", "decode", "repair", "fields", "labels", "correlation", "settings")


def test_the_pure_core_imports_no_configuration_loader() -> None:
    """The core takes its settings models from consumer/settings.py: neither the loader
    (consumer/config.py, consumer/config_sources.py) nor what it reads with (pydantic-settings,
    PyYAML) is imported, directly or through another module."""
    import subprocess
    import sys

    graph = {path.stem: imported_modules(path) for path in PACKAGE.glob("*.py")}
    reached: set[str] = set()
    pending = list(PURE_CORE)
    while pending:
        module = pending.pop()
        if module not in reached:
            reached.add(module)
            pending.extend(graph.get(module, ()))
    assert not reached & {"config", "config_sources", "app", "eventhub", "http", "cli"}, sorted(reached)
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys\n" + "".join(f"import consumer.{m}\n" for m in PURE_CORE)
         + "print(sorted(m for m in ('yaml', 'pydantic_settings', 'consumer.config') if m in sys.modules))"],
        capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]", loaded
