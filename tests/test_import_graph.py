"""The modules of ``webapp`` and ``tasks`` import each other at module top, without cycles.

Read from the source with ``ast`` (nothing is imported): a function-local
import hides a cycle until the first request or click that runs it, and a
renamed task must fail when the app loads, not then.
"""

import ast
import os

from webapp import PROJECT_ROOT

PACKAGES = ("webapp", "tasks")


def module_files():
    for package in PACKAGES:
        for folder, _, names in os.walk(os.path.join(PROJECT_ROOT, package)):
            for name in names:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    module = os.path.relpath(path, PROJECT_ROOT)[:-3].replace(os.sep, ".")
                    yield module.removesuffix(".__init__"), path


def imported_names(node, module):
    """The modules a top-level or nested import statement names, ours only."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    else:
        return []
    return [name for name in names if name.split(".")[0] in PACKAGES]


def loads(name, importer):
    """What importing ``name`` runs: it and each package above it (``tasks.clicks`` runs
    ``tasks/__init__.py``, which imports every task module), except the packages above the
    importer, which are already loading when it runs."""
    parts = name.split(".")
    above_importer = {".".join(importer.split(".")[:depth]) for depth in range(1, importer.count(".") + 1)}
    return {".".join(parts[:depth]) for depth in range(1, len(parts) + 1)} - above_importer - {importer}


def graph():
    """(module → the modules it imports at top, [(module, line, name) of function-local imports])."""
    modules = dict(module_files())
    edges, local = {}, []
    for module, path in modules.items():
        with open(path) as source:
            tree = ast.parse(source.read())
        top = {name for node in tree.body for name in imported_names(node, module)}
        edges[module] = {loaded for name in top for loaded in loads(name, module) if loaded in modules}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    local += [(module, inner.lineno, name) for name in imported_names(inner, module)]
    return edges, local


def cycles(edges):
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_module_of_webapp_or_tasks_imports_ours_inside_a_function():
    _, local = graph()
    assert local == []


def test_no_import_cycle_among_the_modules_of_webapp_and_tasks():
    edges, _ = graph()
    assert cycles(edges) == []


def test_the_graph_sees_the_imports_it_checks():
    # Guards the guard: a test that parsed nothing would pass vacuously.
    edges, _ = graph()
    assert "tasks.reports" in edges["webapp.reports.coordinator"]
    assert "webapp.reports.runner" in edges["tasks.reports"]
    assert "tasks" in edges["webapp.clicks.capture"]  # the package a task module is in runs first
    assert "webapp.dashboard" not in edges["webapp.dashboard.links"]  # its own package: already loading


def test_cycles_finds_a_loop_and_nothing_in_a_chain():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
