"""The code's layout: one name for each thing, layers that only look down, modules that stay small.

Read with `ast` (nothing is imported, so it takes a second):

* no module re-exports: a project name imported into a module is used there; only a package's
  `__init__` (its public face, as `model/` has) and `parser/configs.py` (the parser's documented
  face, `from parser.configs import load_config`) show names defined elsewhere;
* no code (product or test) imports a name through a module that does not define it, and code
  outside `parser/` imports the parser's names from its face only;
* no two modules import each other, directly or around a circle, and no module imports another
  module's private name;
* no import, at module level or inside a function, runs up the layers of
  `docs/internals.md` (enterprise_tools, model, utils -> parser, data_preparation, analysis ->
  training -> testing -> live -> benchmarks, driver);
* the modules split by issue 13 stay under their line limit.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"enterprise_tools": 0, "model": 0, "utils": 0,
          "parser": 1, "data_preparation": 1, "analysis": 1,
          "training": 2, "testing": 3, "live": 4, "benchmarks": 5, "driver": 5}
FACES = {"parser.configs"}  # documented faces besides the packages' __init__
LINE_LIMIT = 500
LIMITED = ("benchmarks/*.py", "data_preparation/*.py", "enterprise_tools/**/*.py", "parser/*.py",
           "training/multi_worker*.py")


def parsed(path: Path) -> ast.Module:
    """The file's syntax tree (parsed once per text in a session)."""
    return _parse(path.read_text(encoding="utf-8"))


@functools.cache
def _parse(text: str) -> ast.Module:
    return ast.parse(text)


def modules(root: Path, packages=(*LAYERS, "tests")) -> dict[str, Path]:
    """{dotted module name: file} of the project's packages (and driver.py) under `root`."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] not in packages and rel.name not in {f"{p}.py" for p in packages}:
            continue
        name = ".".join(rel.with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def defined_names(tree: ast.Module) -> set[str]:
    """Names a module binds itself at top level (functions, classes, assignments), imports aside."""
    names = set()
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            stack += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", []),
                      *(s for h in getattr(node, "handlers", []) for s in h.body)]
    return names


def imports(tree: ast.Module) -> list[tuple[str, str | None, int]]:
    """(module, imported name or None for `import module`, line) of every absolute import."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.module, alias.name, node.lineno) for alias in node.names]
    return found


def is_face(name: str, path: Path) -> bool:
    return path.name == "__init__.py" or name in FACES


def reexports(found: dict[str, Path]) -> dict[str, list[str]]:
    """{module: project names it imports at top level and never uses} outside the faces."""
    out = {}
    for name, path in found.items():
        if is_face(name, path) or name.startswith("tests"):
            continue
        tree = parsed(path)
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        unused = [alias.asname or alias.name
                  for node in tree.body if isinstance(node, ast.ImportFrom) and node.module
                  and node.module.split(".")[0] in LAYERS
                  for alias in node.names if (alias.asname or alias.name) not in used]
        if unused:
            out[name] = unused
    return out


def second_names(found: dict[str, Path]) -> list[str]:
    """`importer:line: module.name` for each import of a name from a project module that does not
    define it (a package face or a submodule aside)."""
    defined = {m: defined_names(parsed(p))
               for m, p in found.items()}
    wrong = []
    for name, path in found.items():
        for module, imported, line in imports(parsed(path)):
            if imported is None or module not in found or is_face(module, found[module]):
                continue
            if imported not in defined[module] and f"{module}.{imported}" not in found:
                wrong.append(f"{name}:{line}: {module}.{imported}")
    return wrong


def upward_imports(found: dict[str, Path]) -> list[str]:
    """`importer:line: importer -> imported` for each import of a higher layer's package."""
    wrong = []
    for name, path in found.items():
        own = LAYERS.get(name.split(".")[0])
        if own is None:
            continue
        for module, _imported, line in imports(parsed(path)):
            other = LAYERS.get(module.split(".")[0])
            if other is not None and other > own:
                wrong.append(f"{name}:{line}: {name} -> {module}")
    return wrong


def import_cycles(found: dict[str, Path]) -> list[list[str]]:
    """Groups of product modules that import each other, directly or around a circle (imports
    inside functions and under TYPE_CHECKING included): Tarjan's strongly connected components."""
    graph = {}
    for name, path in found.items():
        if name.startswith("tests"):
            continue
        targets = set()
        for module, imported, _line in imports(parsed(path)):
            sub = f"{module}.{imported}"
            target = sub if sub in found else module
            if target in found and target != name and not target.startswith("tests"):
                targets.add(target)
        graph[name] = sorted(targets)
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                groups.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return groups


def private_imports(found: dict[str, Path]) -> list[str]:
    """`importer:line: module._name` for each private name product code imports from another
    module (a name other modules use is public in the module that defines it)."""
    return [f"{name}:{line}: {module}.{imported}"
            for name, path in found.items() if not name.startswith("tests")
            for module, imported, line in imports(parsed(path))
            if imported and imported.startswith("_") and not imported.startswith("__")
            and module in found and module != name]


@pytest.fixture(scope="module")
def project() -> dict[str, Path]:
    return modules(ROOT)


def test_no_module_reexports_what_it_imports(project):
    assert reexports(project) == {}


def test_every_name_is_imported_from_the_module_that_defines_it(project):
    assert second_names(project) == []


def test_code_outside_the_parser_imports_only_its_face(project):
    inner = [f"{name}:{line}: {module}" for name, path in project.items()
             if not name.startswith("parser")
             for module, _imported, line in imports(parsed(path))
             if module.startswith("parser.") and module not in FACES]
    assert inner == []


def test_no_import_runs_up_the_layers(project):
    assert upward_imports(project) == []


def test_no_modules_import_each_other_around_a_circle(project):
    assert import_cycles(project) == []


def test_product_code_imports_no_private_name_of_another_module(project):
    assert private_imports(project) == []


def test_the_checks_catch_a_reexport_a_second_name_and_an_upward_import(tmp_path):
    (tmp_path / "utils").mkdir()
    (tmp_path / "training").mkdir()
    (tmp_path / "utils" / "__init__.py").write_text("")
    (tmp_path / "training" / "__init__.py").write_text("")
    (tmp_path / "training" / "train.py").write_text("A, B = 1, 2\ndef fit():\n    pass\n")
    (tmp_path / "utils" / "old.py").write_text(
        "from training.train import fit\n\ndef later():\n    from training.train import A\n")
    (tmp_path / "utils" / "user.py").write_text("from utils.old import fit\n\nfit()\n")
    found = modules(tmp_path, packages=("utils", "training"))
    assert reexports(found) == {"utils.old": ["fit"]}
    assert [w.rsplit(": ", 1)[1] for w in second_names(found)] == ["utils.old.fit"]
    assert [w.rsplit(": ", 1)[1] for w in upward_imports(found)] == [
        "utils.old -> training.train", "utils.old -> training.train"]
    (tmp_path / "training" / "train.py").write_text("from utils.old import _helper\n_helper()\n")
    (tmp_path / "utils" / "old.py").write_text("def _helper():\n    from training import train\n")
    found = modules(tmp_path, packages=("utils", "training"))
    assert import_cycles(found) == [["training.train", "utils.old"]]
    assert [w.rsplit(": ", 1)[1] for w in private_imports(found)] == ["utils.old._helper"]


@pytest.mark.parametrize("pattern", LIMITED)
def test_split_modules_stay_under_the_line_limit(pattern):
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
             for p in ROOT.glob(pattern)}
    assert sizes, pattern
    too_long = {path: n for path, n in sizes.items() if n > LINE_LIMIT}
    assert not too_long, f"over {LINE_LIMIT} lines: {too_long}"
