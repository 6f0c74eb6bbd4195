"""The layering holds at run time too: what a module loads, and that nothing imports itself
back. (``lint-imports`` checks the contracts in pyproject.toml; these check what the
contracts cannot see: the modules a process actually loads, and cycles inside a layer.)"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import grimp
import pytest

SERVER_ONLY = ("tessera.store", "tessera.identity", "tessera.application",
               "tessera.observability.audit", "tessera.settings", "sqlalchemy", "alembic",
               "argon2")


def _loaded_by(statement: str) -> list[str]:
    """The modules ``statement`` loads in a fresh interpreter."""
    probe = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120, check=True)
    modules: list[str] = json.loads(result.stdout.splitlines()[-1])
    return modules


def _server_modules(modules: list[str]) -> list[str]:
    return [m for m in modules
            if any(m == prefix or m.startswith(prefix + ".") for prefix in SERVER_ONLY)]


@pytest.mark.parametrize("statement", [
    "from tessera.verifier.service import VerifierService",
    "from tessera.verifier import verify_access_token",
    "from tessera.verifier.asgi import VerifierMiddleware",
    "from tessera.verifier.fastapi import install",
    "import tessera.verifier.envelope",
    "import tessera.verifier.revocation",
])
def test_loading_the_sdk_loads_no_store_audit_log_or_server_settings(statement: str) -> None:
    modules = _loaded_by(statement)
    assert "tessera.verifier" in modules  # the probe ran
    assert _server_modules(modules) == []


def test_the_probe_sees_server_modules_where_they_are_loaded() -> None:
    """The check above can fail: the composition root does load them."""
    modules = _loaded_by("import tessera.identity.compose")
    assert {"tessera.store", "tessera.settings", "tessera.observability.audit",
            "sqlalchemy"} <= set(_server_modules(modules))


def _imports(graph: grimp.ImportGraph, module: str) -> Iterator[str]:
    return iter(sorted(m for m in graph.find_modules_directly_imported_by(module)
                       if m.startswith("tessera")))


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, _imports(graph, root))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, _imports(graph, child)))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_import_cycle_in_src() -> None:
    """Every import, ``if TYPE_CHECKING:`` blocks included: a cycle that only the type
    checker follows still ties two modules together (neither can be understood, moved or
    split without the other), so it is refused like a run-time one. Break one with a
    Protocol next to the importer or by moving the shared type down a module."""
    graph = grimp.build_graph("tessera", exclude_type_checking_imports=False, cache_dir=None)
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("tessera.a", "tessera.b", "tessera.c"):
        graph.add_module(module)
    graph.add_import(importer="tessera.a", imported="tessera.b")
    graph.add_import(importer="tessera.b", imported="tessera.c")
    graph.add_import(importer="tessera.c", imported="tessera.a")
    assert _cycles(graph) == [["tessera.a", "tessera.b", "tessera.c"]]
