"""The package's shape, read from the source with ``ast`` (nothing is imported).

- No import cycles between ganpipe modules, function-local imports included: every import of a
  ganpipe module is an edge of a graph, and no strongly connected component of it may hold more
  than one module.
- No code in ganpipe/, tests/ or benchmarks/ uses a private name (``_x``, not a dunder) of a
  ganpipe module, by ``from ganpipe.x import _y`` or by ``m._y`` on a name bound to a module.

Each checker is also run on a small synthetic input it must reject, so these tests can fail.
"""

from __future__ import annotations

import ast
import pathlib
import textwrap
from collections.abc import Iterable, Iterator, Mapping

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "ganpipe"
SCANNED = ("ganpipe", "tests", "benchmarks")


def module_name(path: pathlib.Path, root: pathlib.Path = REPO) -> str:
    """``ganpipe/eval/quality.py`` -> ``ganpipe.eval.quality``; a package's __init__.py -> the
    package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(root: pathlib.Path = REPO) -> dict[str, pathlib.Path]:
    """Every module of the package, by dotted name."""
    return {module_name(p, root): p for p in sorted((root / PACKAGE).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, function bodies included, except what sits under ``if TYPE_CHECKING:``
    (never executed, so never part of a cycle)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str | None:
    """The module an ``ImportFrom`` reads from, with relative imports resolved."""
    if not node.level:
        return node.module
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    if node.level > 1:
        package = package[: -(node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def _ours(name: str | None) -> bool:
    return name is not None and (name == PACKAGE or name.startswith(PACKAGE + "."))


def imports_of(
    source: str, importer: str, known: Iterable[str], *, is_package: bool = False
) -> list[tuple[str, int]]:
    """(imported ganpipe module, line) for every import in ``source``, function-local ones
    included. ``from a import b`` is an edge to ``a.b`` when that is a module, else to ``a``
    (a package's names live in its __init__)."""
    known = set(known)
    edges = []
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            edges += [(alias.name, node.lineno) for alias in node.names if _ours(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, importer, is_package)
            if not _ours(base):
                continue
            for alias in node.names:
                child = f"{base}.{alias.name}"
                edges.append((child if child in known else base, node.lineno))
    return edges


def import_graph(root: pathlib.Path = REPO) -> dict[str, dict[str, str]]:
    """module -> {imported module: 'path:line' of the first such import}."""
    modules = package_modules(root)
    graph: dict[str, dict[str, str]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, {})
        found = imports_of(path.read_text(), name, modules, is_package=path.name == "__init__.py")
        for target, line in found:
            if target != name and target in modules:
                edges.setdefault(target, f"{path.relative_to(root)}:{line}")
    return graph


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def cycle_through(graph: Mapping[str, Iterable[str]], component: list[str]) -> list[str]:
    """A shortest cycle from the component's first module back to it, as a module list."""
    members, start = set(component), component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child in members and child not in previous and child != start:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{component} is not strongly connected")


def import_cycles(graph: Mapping[str, Mapping[str, str]]) -> list[str]:
    """One line per strongly connected component of more than one module: a cycle through it,
    each edge with the import that makes it."""
    lines = []
    for component in strongly_connected(graph):
        if len(component) < 2:
            continue
        cycle = cycle_through(graph, component)
        hops = [f"{a} -> {b} ({graph[a][b]})" for a, b in zip(cycle, cycle[1:])]
        inside = [
            f"{a} -> {b} ({where})"
            for a in component
            for b, where in sorted(graph[a].items())
            if b in component
        ]
        lines.append(
            f"cycle among {component}: "
            + "; ".join(hops)
            + "\n  every import inside it:\n    "
            + "\n    ".join(inside)
        )
    return lines


def reachable(graph: Mapping[str, Iterable[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen, stack = set(), [start]
    while stack:
        for child in graph.get(stack.pop(), ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


# --- private names ------------------------------------------------------------------------


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _bound_names(body: list[ast.stmt]) -> set[str]:
    """Names a scope binds by anything but an import (assignment, loop, with, def, class...),
    not looking into nested functions or classes."""
    names = set()
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            stack.extend(node.decorator_list)
            continue
        elif isinstance(node, ast.Lambda):
            continue
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        stack.extend(ast.iter_child_nodes(node))
    return names


class _PrivateUse(ast.NodeVisitor):
    """Finds ``from <ganpipe module> import _x`` and ``<module>._x`` where the name is bound
    to a ganpipe module in the scope where it is used (Python's function-scope rules; a name
    rebound by assignment in that scope is not the module there)."""

    def __init__(self, importer: str, is_package: bool, known: set[str]):
        self.importer, self.is_package, self.known = importer, is_package, known
        self.scopes: list[tuple[dict[str, str | None], bool]] = []
        self.found: list[tuple[int, str]] = []

    def _module_bindings(self, body: list[ast.stmt]) -> dict[str, str | None]:
        scope: dict[str, str | None] = {name: None for name in _bound_names(body)}
        stack: list[ast.AST] = list(body)
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if not _ours(alias.name):
                        continue
                    if alias.asname:
                        scope[alias.asname] = alias.name
                    else:
                        scope[alias.name.split(".")[0]] = alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, self.importer, self.is_package)
                if _ours(base):
                    for alias in node.names:
                        child = f"{base}.{alias.name}"
                        if child in self.known:
                            scope[alias.asname or alias.name] = child
            stack.extend(ast.iter_child_nodes(node))
        return scope

    def _lookup(self, name: str) -> str | None:
        innermost = True
        for scope, is_class in reversed(self.scopes):
            if is_class and not innermost:
                continue  # a class body's names are not visible in its methods
            innermost = False
            if name in scope:
                return scope[name]
        return None

    def _visit_scope(self, node, body, is_class=False):
        self.scopes.append((self._module_bindings(body), is_class))
        self.generic_visit(node)
        self.scopes.pop()

    def visit_Module(self, node):
        self._visit_scope(node, node.body)

    def visit_FunctionDef(self, node):
        for default in [*node.args.defaults, *node.args.kw_defaults, *node.decorator_list]:
            if default is not None:
                self.visit(default)
        scope = self._module_bindings(node.body)
        arguments = node.args
        for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
            scope[arg.arg] = None
        for arg in (arguments.vararg, arguments.kwarg):
            if arg is not None:
                scope[arg.arg] = None
        self.scopes.append((scope, False))
        for statement in node.body:
            self.visit(statement)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        for expression in [*node.bases, *node.keywords, *node.decorator_list]:
            self.visit(expression)
        self.scopes.append((self._module_bindings(node.body), True))
        for statement in node.body:
            self.visit(statement)
        self.scopes.pop()

    def visit_ImportFrom(self, node):
        base = _absolute(node, self.importer, self.is_package)
        if _ours(base):
            for alias in node.names:
                if _private(alias.name):
                    self.found.append((node.lineno, f"from {base} import {alias.name}"))

    def visit_Attribute(self, node):
        chain, base = [], node
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        if isinstance(base, ast.Name):
            module = self._lookup(base.id)
            if module is not None:
                for attr in reversed(chain):
                    if f"{module}.{attr}" in self.known:
                        module = f"{module}.{attr}"
                        continue
                    if _private(attr):
                        self.found.append((node.lineno, f"{module}.{attr}"))
                    break
                # Only the outermost attribute chain is inspected; its parts are not revisited.
                return
        self.generic_visit(node)


def private_uses(
    source: str, importer: str, known: Iterable[str], *, is_package: bool = False
) -> list[tuple[int, str]]:
    """(line, what) for every use of a ganpipe module's private name in ``source``."""
    visitor = _PrivateUse(importer, is_package, set(known))
    visitor.visit(ast.parse(source))
    return sorted(set(visitor.found))


def private_name_violations(root: pathlib.Path = REPO) -> list[str]:
    known = set(package_modules(root))
    lines = []
    for folder in SCANNED:
        for path in sorted((root / folder).rglob("*.py")):
            name = module_name(path, root)
            for line, what in private_uses(
                path.read_text(), name, known, is_package=path.name == "__init__.py"
            ):
                lines.append(f"{path.relative_to(root)}:{line}: {what}")
    return lines


# --- layers and the backend ----------------------------------------------------------------

# Above the training layer: the modules that assemble a run from it.
ABOVE_TRAINING = {"ganpipe.trainer", "ganpipe.main", "ganpipe.config"}
TRAINING = "ganpipe.training"


def upward_arrows(graph: Mapping[str, Mapping[str, str]]) -> dict[tuple[str, str], str]:
    """(importer, imported) -> 'path:line' for each import of a training module by a module
    below that layer (neither in it nor one of ``ABOVE_TRAINING``)."""
    return {
        (a, b): where
        for a, edges in graph.items()
        if not (a == TRAINING or a.startswith(TRAINING + ".") or a in ABOVE_TRAINING)
        for b, where in edges.items()
        if b.startswith(TRAINING + ".")
    }


def backend_name_calls(source: str) -> list[int]:
    """The lines that call ``keras.backend.backend()`` or ``keras.config.backend()``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if (
                node.func.attr == "backend"
                and isinstance(owner, ast.Attribute)
                and owner.attr in ("backend", "config")
                and isinstance(owner.value, ast.Name)
                and owner.value.id == "keras"
            ):
                lines.append(node.lineno)
    return lines


def backend_name_asked(root: pathlib.Path = REPO) -> dict[str, list[int]]:
    """ganpipe module file -> lines asking the Keras backend's name, outside ganpipe/backend/."""
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative.startswith(f"{PACKAGE}/backend/"):
            continue
        lines = backend_name_calls(path.read_text())
        if lines:
            found[relative] = lines
    return found


# --- the checks on the repository ---------------------------------------------------------


def test_no_import_cycles_between_ganpipe_modules():
    graph = import_graph()
    assert len(graph) > 20 and "ganpipe.config" in graph  # the scan found the package
    cycles = import_cycles(graph)
    assert not cycles, "Import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize(
    "module", ["ganpipe.eval.evaluation", "ganpipe.eval.quality", "ganpipe.eval.classifier"]
)
def test_the_evaluation_library_reaches_neither_gin_config_nor_the_trainer(module):
    # The training loop imports these (evaluation during training); the gin-facing side of
    # evaluation is ganpipe.eval.run, for commands.
    reached = reachable(import_graph(), module)
    assert not reached & {"ganpipe.config", "ganpipe.trainer", "ganpipe.eval.run"}, reached


def test_no_private_names_of_ganpipe_modules_are_used_outside_them():
    violations = private_name_violations()
    assert not violations, (
        f"{len(violations)} uses of private names of ganpipe modules (make the name public or "
        "use a public API):\n" + "\n".join(violations)
    )


# --- the checkers reject what they are for (so the checks above can fail) ---------------------


def test_the_cycle_finder_reports_a_synthetic_cycle():
    graph = {
        "ganpipe.a": {"ganpipe.b": "a.py:1"},
        "ganpipe.b": {"ganpipe.c": "b.py:2"},
        "ganpipe.c": {"ganpipe.a": "c.py:3", "ganpipe.d": "c.py:4"},
        "ganpipe.d": {},
        "ganpipe.e": {"ganpipe.e": "e.py:5"},  # a self-import is not a cycle between modules
    }
    cycles = import_cycles(graph)
    assert len(cycles) == 1
    assert "['ganpipe.a', 'ganpipe.b', 'ganpipe.c']" in cycles[0]
    assert "ganpipe.c -> ganpipe.a (c.py:3)" in cycles[0]
    del graph["ganpipe.c"]["ganpipe.a"]
    assert import_cycles(graph) == []


def test_function_local_package_and_relative_imports_are_edges():
    known = {"ganpipe", "ganpipe.config", "ganpipe.eval", "ganpipe.eval.quality", "ganpipe.data"}
    source = textwrap.dedent(
        """
        import os
        from ganpipe.data import load_images
        from . import quality
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from ganpipe import trainer

        def f():
            from ganpipe import config
            import ganpipe.eval.quality as q
        """
    )
    edges = {target for target, _ in imports_of(source, "ganpipe.eval.evaluation", known)}
    assert edges == {"ganpipe.data", "ganpipe.eval.quality", "ganpipe.config"}


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from ganpipe.trainer import _Steps", ["from ganpipe.trainer import _Steps"]),
        ("from ganpipe import trainer\ntrainer._frozen_call(1)", ["ganpipe.trainer._frozen_call"]),
        ("import ganpipe.trainer as t\nt._LABELS", ["ganpipe.trainer._LABELS"]),
        ("import ganpipe.eval.quality\nganpipe.eval.quality._x", ["ganpipe.eval.quality._x"]),
        (
            "def f():\n    from ganpipe.eval import quality\n    quality._y",
            ["ganpipe.eval.quality._y"],
        ),
        # Not module privates: dunders, an instance's attribute, a shadowed module name.
        ("from ganpipe import trainer\ntrainer.__name__", []),
        ("from ganpipe import trainer\ntrainer.Trainer(1)._steps", []),
        ("from ganpipe import trainer\ndef f(trainer):\n    trainer._steps", []),
        ("from ganpipe import trainer\ndef f():\n    trainer = 1\n    trainer._steps", []),
        ("import numpy as np\nnp._x", []),
    ],
)
def test_the_private_name_finder(source, expected):
    known = {"ganpipe", "ganpipe.trainer", "ganpipe.eval", "ganpipe.eval.quality"}
    assert [what for _, what in private_uses(source, "tests.test_x", known)] == expected


def test_the_modules_run_first_exist():
    from tests.conftest import FIRST, REPO

    assert [path for path in FIRST if not (REPO / path).is_file()] == []


# The one import of the training layer from below it: the cost table builds the models the way
# a run does (``state.build_models``), so that its counts are the trained models'.
UPWARD = {("ganpipe.models.cost", "ganpipe.training.state")}


def test_only_the_named_imports_reach_up_into_the_training_layer():
    arrows = upward_arrows(import_graph())
    assert set(arrows) <= UPWARD and len(UPWARD) <= 2, arrows


# Where the backend's name is asked outside ganpipe/backend/ (WORKSPACE.md says why each):
# lazy_tf decides whether TensorFlow may be imported at all, before ganpipe.backend can load;
# distribute picks JAX's device mesh or a tf.distribute strategy; rundir records the name.
NAME_ASKED = {"ganpipe/lazy_tf.py", "ganpipe/distribute.py", "ganpipe/rundir.py"}


def test_the_backend_name_is_asked_in_the_backend_package_and_three_named_places_only():
    found = backend_name_asked()
    assert set(found) <= NAME_ASKED, found
    assert sum(len(lines) for lines in found.values()) <= 3, found


def test_the_layer_and_name_checkers_find_what_they_are_for():
    graph = {
        "ganpipe.penalties": {"ganpipe.training.steps": "penalties.py:3"},
        "ganpipe.trainer": {"ganpipe.training.state": "trainer.py:1"},
        "ganpipe.training.steps": {"ganpipe.training.state": "steps.py:2"},
    }
    assert upward_arrows(graph) == {
        ("ganpipe.penalties", "ganpipe.training.steps"): "penalties.py:3"
    }
    source = "import keras\nif keras.backend.backend() == 'jax':\n    x = keras.config.backend()\n"
    assert backend_name_calls(source) == [2, 3]
    assert backend_name_calls("backend.NAME\nkeras.backend.floatx()\n") == []


def test_the_trainer_stays_small_and_takes_its_parts_in_four_groups():
    # The trainer was taken apart into ganpipe.training; its entry takes one GAN definition,
    # the data, the settings and the strategy (gin's 23 bindings of `train` are assembled by
    # ganpipe.gan.train).
    source = (REPO / "ganpipe" / "trainer.py").read_text()
    assert len(source.splitlines()) <= 250
    init = next(
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef) and node.name == "__init__"
    )
    arguments = [a.arg for a in (*init.args.args, *init.args.kwonlyargs) if a.arg != "self"]
    assert arguments == ["gan", "data", "settings", "strategy"]
