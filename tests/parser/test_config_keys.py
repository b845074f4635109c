"""The config is read where it should be: no dead keys, and YAML / environment only at the edges.

Static checks over the project's own Python (every package beside ``tests/``, plus top-level
scripts such as ``driver.py``), read with ``ast`` so that comments and docstrings never count:

* every key of ``configs/default.yaml`` (= every field of the section dataclasses) is read
  somewhere outside ``parser/``: an attribute load ``<x>.<key>`` that is not a method call, or a
  ``getattr(<x>, "<key>")``. A key only ``parser/`` needs goes in ``PARSER_INTERNAL`` with why.
* no module outside ``parser/`` reads YAML (``yaml.safe_load``, ``yaml.load``, ...) and none
  touches the environment (``os.environ``, ``os.getenv``, ...) except the functions listed,
  each with its reason, in ``ENV_ALLOWED``. Everything else takes what it needs as arguments.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from parser.configs import SECTION_CLASSES

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_YAML = ROOT / "configs" / "default.yaml"
NOT_SCANNED = {"tests", "parser"}  # tests may do anything; parser/ is where config is read

# "section.key" -> why only parser/ reads it. Empty: every key is used by the project.
PARSER_INTERNAL: dict[str, str] = {
    "threshold.operating_point": "read through ThresholdConfig.choice(), the keyword arguments "
                                 "of choose_threshold that the train flow passes on",
}

# (module path, enclosing function) -> why it may touch os.environ / os.getenv.
ENV_ALLOWED: dict[tuple[str, str], str] = {
    ("driver.py", "main"):
        "the entry point: copies os.environ once and passes it down to the flows as a Mapping "
        "(SLURM / TF_CONFIG for training); sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads",
    ("driver.py", "quiet_tensorflow"):
        "the driver sets TF_CPP_MIN_LOG_LEVEL once, before TensorFlow is imported, unless "
        "--debug (TensorFlow's C++ start-up lines off a plain run's console)",
    ("benchmarks/__main__.py", "main"):
        "the benchmarks' entry point: sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads",
    ("benchmarks/children.py", "run_cpu_child"):
        "starts the speed, stream and scale child processes with the parent's environment "
        "plus CPU-only pins",
    ("benchmarks/device_rolling.py", "run_all"):
        "starts the rolling slices' child processes with the parent's environment plus "
        "no GPU memory preallocation and unbuffered output",
    ("benchmarks/bench_multi_worker.py", "_run_workers"):
        "starts local worker processes with the parent's environment plus their TF_CONFIG",
    ("training/multi_worker.py", "_check_slurm_env"):
        "TensorFlow's SlurmClusterResolver reads the SLURM step variables from os.environ "
        "itself; this refuses a passed-in env that disagrees with it (it reads no setting)",
}

# Names of config keys read with getattr(<x>, "<key>", ...) today, and why. New code reads the
# field (the dataclass always has it); this list may only shrink.
GETATTR_DEFAULTS_KNOWN = {
    "per_trace": "TODO(issue 13 item 1): model/architectures.py, scaling.per_trace via a copy",
    "input_pool": "TODO(issue 13 item 1): model/architectures.py builder default",
    "global_pooling": "TODO(issue 13 item 1): model/architectures.py builder default",
    "streaming": "TODO: data_preparation/pipeline.py reads train.streaming with a default",
    "source": "TODO: data_preparation/data_loader.py, for a data.source key not yet in the schema",
    "name": "not config: enterprise_tools/biet_reader.py reads a file object's name",
}

ENV_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
YAML_READERS = {
    "load", "safe_load", "full_load", "unsafe_load", "load_all", "safe_load_all",
    "full_load_all", "unsafe_load_all", "compose", "compose_all", "parse", "scan",
}


# --------------------------------------------------------------------------------------------
# The scanners (also run on planted examples below, so that each can be seen to fail)


def project_modules(root: Path = ROOT, skip: Iterable[str] = NOT_SCANNED) -> list[Path]:
    """Top-level scripts and every module of the top-level packages, minus ``skip``."""
    files = sorted(root.glob("*.py"))
    for package in sorted(p for p in root.iterdir() if (p / "__init__.py").is_file()):
        if package.name not in set(skip):
            files += sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)
    return files


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def attribute_reads(files: Iterable[Path]) -> tuple[set[str], set[str]]:
    """Names read as ``<x>.<name>`` (not called) and names read as ``getattr(<x>, "<name>"...)``."""
    loads: set[str] = set()
    getattrs: set[str] = set()
    for path in files:
        tree = _tree(path)
        called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)
                    and id(node) not in called):
                loads.add(node.attr)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id == "getattr" and len(node.args) >= 2
                  and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
                getattrs.add(node.args[1].value)
    return loads, getattrs


def config_keys(sections: Mapping[str, type]) -> list[str]:
    """``section.key`` for every field of every section dataclass."""
    return [f"{name}.{f.name}" for name, cls in sections.items() for f in dataclasses.fields(cls)]


def unread_keys(sections: Mapping[str, type], files: Iterable[Path],
                internal: Mapping[str, str] = PARSER_INTERNAL) -> list[str]:
    """Config keys no scanned module reads (and not declared parser-internal)."""
    loads, getattrs = attribute_reads(files)
    return [key for key in config_keys(sections)
            if key.split(".", 1)[1] not in loads | getattrs and key not in internal]


def _functions_by_line(tree: ast.Module) -> list[tuple[int, int, str]]:
    return [(n.lineno, n.end_lineno or n.lineno, n.name) for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def _enclosing(functions: list[tuple[int, int, str]], line: int) -> str:
    inside = [(end - start, name) for start, end, name in functions if start <= line <= end]
    return min(inside)[1] if inside else "<module>"


def edge_reads(files: Iterable[Path], root: Path = ROOT) -> list[tuple[str, str, int, str]]:
    """Every environment or YAML read: (module path, enclosing function, line, what)."""
    found = []
    for path in files:
        tree = _tree(path)
        functions = _functions_by_line(tree)
        yaml_names = {"yaml"} | {a.asname for n in ast.walk(tree) if isinstance(n, ast.Import)
                                 for a in n.names if a.name == "yaml" and a.asname}
        os_names = {"os"} | {a.asname for n in ast.walk(tree) if isinstance(n, ast.Import)
                             for a in n.names if a.name == "os" and a.asname}
        hits = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id in os_names and node.attr in ENV_NAMES:
                    hits.append((node.lineno, f"os.{node.attr}"))
                elif node.value.id in yaml_names and node.attr in YAML_READERS:
                    hits.append((node.lineno, f"yaml.{node.attr}"))
            elif isinstance(node, ast.ImportFrom) and node.module in ("os", "yaml"):
                names = ENV_NAMES if node.module == "os" else YAML_READERS
                hits += [(node.lineno, f"from {node.module} import {a.name}")
                         for a in node.names if a.name in names or a.name == "*"]
        rel = path.relative_to(root).as_posix()
        found += [(rel, _enclosing(functions, line), line, what) for line, what in hits]
    return sorted(found)


# --------------------------------------------------------------------------------------------
# The project


def test_default_yaml_keys_are_the_dataclass_fields():
    raw = yaml.safe_load(DEFAULT_YAML.read_text(encoding="utf-8"))
    yaml_keys = [f"{section}.{key}" for section, body in raw.items() for key in body]
    assert yaml_keys == config_keys(SECTION_CLASSES)


def test_every_config_key_is_read_outside_parser():
    files = project_modules()
    assert any(p.name == "driver.py" for p in files) and not any("tests" in p.parts for p in files)
    dead = unread_keys(SECTION_CLASSES, files)
    assert not dead, (
        f"config keys no code outside parser/ reads: {dead}. Use them, remove them from "
        "parser/schema.py and configs/default.yaml, or list them in PARSER_INTERNAL with why.")
    stale = sorted(set(PARSER_INTERNAL) - set(config_keys(SECTION_CLASSES)))
    assert not stale, f"PARSER_INTERNAL names keys that no longer exist: {stale}"


def test_no_new_getattr_defaults_on_config_keys():
    _, getattrs = attribute_reads(project_modules())
    keys = {key.split(".", 1)[1] for key in config_keys(SECTION_CLASSES)}
    new = sorted((getattrs & keys) - set(GETATTR_DEFAULTS_KNOWN))
    assert not new, f"config keys read with getattr(..., default): {new}; read the field itself"


def test_no_module_outside_parser_reads_yaml_or_the_environment():
    reads = edge_reads(project_modules())
    unexpected = [r for r in reads if r[3].startswith("yaml") or "from yaml" in r[3]
                  or (r[0], r[1]) not in ENV_ALLOWED]
    assert not unexpected, (
        "YAML / environment read outside parser/ (pass the value in as an argument, or add "
        f"(module, function) to ENV_ALLOWED with the reason): {unexpected}")
    # an entry for a module not in this tree (another branch's, not merged yet) is not stale
    unused = sorted(key for key in set(ENV_ALLOWED) - {(r[0], r[1]) for r in reads}
                    if (ROOT / key[0]).exists())
    assert not unused, f"ENV_ALLOWED entries that read nothing any more (remove them): {unused}"


# --------------------------------------------------------------------------------------------
# Planted examples: the scanners catch what they should


@dataclasses.dataclass(frozen=True)
class _PlantedSection:
    alive: int = 1
    planted_dead_key: int = 2
    only_in_text: int = 3
    only_called: int = 4


def _planted_project(tmp_path: Path) -> Path:
    (tmp_path / "driver.py").write_text("def main(config):\n    return config.tool.alive\n")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "reader.py").write_text(
        '"""Mentions config.tool.only_in_text in a docstring."""\n'
        "import os\n"
        "import yaml as y\n"
        "from os import getenv\n\n"
        "def sneaky(path):\n"
        "    # config.tool.only_in_text in a comment does not count either\n"
        "    home = os.environ.get('HOME')\n"
        "    return y.safe_load(open(path)), home, something.only_called()\n"
    )
    parser = tmp_path / "parser"
    parser.mkdir()
    (parser / "__init__.py").write_text("")
    (parser / "configs.py").write_text("import yaml\n\ndef load(p):\n    return yaml.safe_load(p).planted_dead_key\n")
    return tmp_path


def test_a_planted_dead_key_is_found(tmp_path):
    root = _planted_project(tmp_path)
    files = project_modules(root)
    assert [p.relative_to(root).as_posix() for p in files] == ["driver.py", "pkg/__init__.py",
                                                              "pkg/reader.py"]
    sections = {"tool": _PlantedSection}
    assert unread_keys(sections, files, {}) == [
        "tool.planted_dead_key", "tool.only_in_text", "tool.only_called"]
    # declared parser-internal, the key no longer counts as dead; read by a module, neither
    assert unread_keys(sections, files, {"tool.planted_dead_key": "parser only"}) == [
        "tool.only_in_text", "tool.only_called"]
    (root / "pkg" / "user.py").write_text("x = getattr(cfg, 'planted_dead_key', 0)\n")
    assert "tool.planted_dead_key" not in unread_keys(sections, project_modules(root), {})


def test_planted_yaml_and_environment_reads_are_found(tmp_path):
    root = _planted_project(tmp_path)
    reads = edge_reads(project_modules(root), root)
    assert [(m, f, what) for m, f, _, what in reads] == [
        ("pkg/reader.py", "<module>", "from os import getenv"),
        ("pkg/reader.py", "sneaky", "os.environ"),
        ("pkg/reader.py", "sneaky", "yaml.safe_load"),
    ]
