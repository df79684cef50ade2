"""Layers point one way: the import graph of the `selfcorrect` package, read from the source (no module is imported).

The layers, bottom to top; a module imports modules of its own layer or of layers below it, never above:

1. bottom: `errors` (the error types; imports nothing from selfcorrect), `registry` (the one registry style),
   `network`, `collective`, `precision`, `answers`, `metrics`, `algos` (the tensor math), `models` (resolving and
   loading models), `plots`;
2. domain: `rewards`, `_verify_worker`, `feedback`, `episodes`, `critics`, `verification`, `guards`;
3. data: `data/` (loading, formatting, the recipe's data fields, REDI and revision rows): data preparation only, so
   it runs no model (it imports neither `models` nor `episodes`);
4. trainers: `trainers/` (its `registry` is its bottom: it imports no trainer);
5. recipe: `configs`, `launch_utils`, `tracking`;
6. commands: `train`, `evaluate`, `callbacks`, `redi_data`, `revision_data`, `trace_sampling`, `bench`, `exit_codes`, `cli`
   (`cli` maps the error types to exit codes; no module imports it).

And no module imports a module that imports it back, directly or through others (no cycle).

What counts as an import of module A by module B: every `import` / `from ... import` in B's file, at module level, in
a function (a run-time dependency all the same) or under `if TYPE_CHECKING:` (a type names the layer it comes from);
`from package import name` counts `package.name` when that is a module, else `package`; importing a module of
another package counts that package's `__init__` too (it runs first). Not counted: imports inside an
`if __name__ == "__main__":` block, which runs only when the file is the program (`python -m selfcorrect.train`),
never when the module is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "selfcorrect"

LAYERS = {
    "bottom": {
        "errors",
        "registry",
        "network",
        "collective",
        "precision",
        "answers",
        "metrics",
        "algos",
        "models",
        "plots",
    },
    "domain": {"rewards", "_verify_worker", "feedback", "episodes", "critics", "verification", "guards"},
    "data": {"data"},
    "trainers": {"trainers"},
    "recipe": {"configs", "launch_utils", "tracking"},
    "commands": {
        "train",
        "evaluate",
        "callbacks",
        "redi_data",
        "revision_data",
        "trace_sampling",
        "bench",
        "exit_codes",
        "cli",
    },
}
RANK = {layer: rank for rank, layer in enumerate(LAYERS)}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its `__init__.py`)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_main_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return (
        isinstance(node, ast.If)
        and isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
    )


def _imports(tree: ast.AST):
    """Every import node of the file, except those under `if __name__ == "__main__":`."""
    for node in ast.iter_child_nodes(tree):
        if _is_main_block(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _imports(node)


def _imported_names(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, modules) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return {f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target for alias in node.names}


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]


def import_graph() -> dict[str, set[str]]:
    """module -> the selfcorrect modules it imports (see the module docstring for what counts)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        deps: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            for name in _imported_names(module, is_package, node, modules):
                if name != "selfcorrect" and not name.startswith("selfcorrect."):
                    continue
                while name not in modules:  # `from selfcorrect.x import name` where name is not a module
                    name = name.rsplit(".", 1)[0]
                own = set(_ancestors(module)) | {module}
                deps |= {m for m in [*_ancestors(name), name] if m not in own}
        graph[module] = deps
    return graph


def layer_of(module: str) -> str:
    if module == "selfcorrect":
        return "bottom"  # the package's `__init__`: imports nothing (asserted below)
    top = module.split(".")[1]
    for layer, names in LAYERS.items():
        if top in names:
            return layer
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS (and the docstring) where it belongs")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_imports_it_should():
    """The reader works: known edges of each kind are found (module level, function level, TYPE_CHECKING, package)."""
    graph = import_graph()
    assert "selfcorrect.errors" in graph["selfcorrect.configs"]  # module level
    assert "selfcorrect.trainers" in graph["selfcorrect.configs"]  # in a function
    assert "selfcorrect.data.args" in graph["selfcorrect.data.loading"]  # under TYPE_CHECKING
    assert "selfcorrect.data" in graph["selfcorrect.configs"]  # another package's __init__ runs first
    assert "selfcorrect.cli" not in graph["selfcorrect.train"]  # only in its `__main__` block


def test_no_module_imports_a_module_that_imports_it_back():
    cycles = _cycles(import_graph())
    assert not cycles, f"import cycles: {cycles}"


def test_every_import_points_down_the_layers():
    graph = import_graph()
    upward = [
        f"{module} ({layer_of(module)}) imports {dep} ({layer_of(dep)})"
        for module, deps in sorted(graph.items())
        for dep in sorted(deps)
        if RANK[layer_of(dep)] > RANK[layer_of(module)]
    ]
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)


def test_the_bottoms_import_nothing_above_them():
    graph = import_graph()
    assert graph["selfcorrect.errors"] == set(), "errors.py is the bottom: it imports nothing from selfcorrect"
    assert graph["selfcorrect.trainers.registry"] <= {"selfcorrect.registry"}, "the method registry imports no trainer"
    assert graph["selfcorrect"] == set()


def test_data_runs_no_model_and_nothing_imports_the_command_line():
    graph = import_graph()
    for module, deps in graph.items():
        if layer_of(module) == "data":
            assert not deps & {"selfcorrect.models", "selfcorrect.episodes", "selfcorrect.trace_sampling"}, module
        assert "selfcorrect.cli" not in deps, f"{module} imports the command line"
