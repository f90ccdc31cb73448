"""Finds import cycles among our own modules, and our imports hidden inside functions.

    python scripts/import_cycles.py            # exit 1 on a module-level cycle or an unexplained
                                               # import of ours inside a function
    python scripts/import_cycles.py --hidden   # also list every function-level import of ours

A module-level cycle makes the import order matter and usually means two modules share one
concept. An import inside a function hides such a cycle from this check: those are allowed only
where a library forces them (Django's AppConfig.ready, a model a library asks for its key), with a
comment in the function, before or on the import line, saying why.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("idp", "accounts", "clients", "audit", "core")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def our_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[module_name(path)] = path
    return found


def _resolve(node: ast.ImportFrom | ast.Import, current: str, modules: dict[str, Path]) -> set[str]:
    """The modules of ours that an import statement imports (a name may be a module or not)."""
    targets: set[str] = set()
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the current package, up `level - 1` more
            package = current.split(".")
            if modules[current].name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        submodules = [f"{base}.{alias.name}" for alias in node.names]
        # `from package import module` imports the module; `from module import name`, the module.
        names = [n for n in submodules if n in modules] or [base]
    for name in names:
        while name:
            if name in modules:
                targets.add(name)
                break
            name = name.rpartition(".")[0]
    return targets


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(
    name: str, path: Path, modules: dict[str, Path]
) -> tuple[set[str], list[tuple[int, str, bool]]]:
    """(modules imported at module level, [(line, module, explained) imported inside functions])."""
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text, filename=str(path))
    top: set[str] = set()
    hidden: list[tuple[int, str, bool]] = []

    def visit(node: ast.AST, function: ast.AST | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue  # annotations only: never run
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in _resolve(child, name, modules) - {name}:
                    if function is None:
                        top.add(target)
                        continue
                    before = lines[function.lineno : child.end_lineno]
                    hidden.append((child.lineno, target, any("#" in line for line in before)))
            inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
            visit(child, inner)

    visit(tree, None)
    return top, hidden


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def connect(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", action="store_true", help="list function-level imports of our modules")
    args = parser.parse_args()
    modules = our_modules()
    graph: dict[str, set[str]] = {}
    hidden: list[tuple[str, int, str, bool]] = []
    for name, path in sorted(modules.items()):
        top, inner = imports_of(name, path, modules)
        # A package's __init__ importing its own submodules is how packages work, not a cycle.
        graph[name] = {t for t in top if not name or not t.startswith(name + ".")}
        hidden += [(name, line, target, explained) for line, target, explained in inner]
    found = cycles(graph)
    for component in found:
        print("cycle:", " <-> ".join(component))
    unexplained = [entry for entry in hidden if not entry[3]]
    for name, line, target, explained in hidden:
        if args.hidden or not explained:
            why = "" if explained else " without a comment saying why"
            print(f"hidden: {modules[name].relative_to(ROOT)}:{line} imports {target}{why}")
    print(f"{len(modules)} modules, {len(found)} module-level cycle(s), {len(hidden)} imports in functions")
    return 1 if found or unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
