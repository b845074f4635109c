"""parser/configs.py after its split (issue 13): every old name is the new modules' own object.

The package stays small: no module of parser/ over MAX_LINES lines.
"""

from __future__ import annotations

from pathlib import Path

import parser.configs as configs
from parser import loading, schema, validation

PARSER_DIR = Path(__file__).resolve().parents[2] / "parser"
MAX_LINES = 500
NEW_MODULES = (validation, schema, loading)
# Names the project and its docs import from parser.configs besides __all__.
EXTRA_OLD_NAMES = ("_option", "_Section")


def test_every_old_name_is_the_new_modules_object():
    names = [*configs.__all__, *EXTRA_OLD_NAMES]
    assert len(names) >= 25
    new_names = {m.__name__ for m in NEW_MODULES}
    for name in names:
        assert hasattr(configs, name), f"parser.configs lost {name}"
        value = getattr(configs, name)
        homes = [m for m in NEW_MODULES if name in vars(m) and getattr(m, name) is value]
        assert homes, f"parser.configs.{name} is not an object of the new modules"
        if isinstance(value, type) or callable(value):  # defined there, not in the facade
            assert value.__module__ in new_names, f"{name} is defined in {value.__module__}"


def test_new_modules_all_names_are_reexported():
    for module in NEW_MODULES:
        for name in module.__all__:
            assert getattr(configs, name) is getattr(module, name), f"{module.__name__}.{name}"
            assert name in configs.__all__, f"{name} missing from parser.configs.__all__"


def test_section_classes_live_in_schema_and_validate_through_validation():
    assert configs.Config.__module__ == "parser.schema"
    assert configs.ConfigError.__module__ == "parser.validation"
    assert configs.load_config.__module__ == "parser.loading"
    assert all(issubclass(cls, validation._Section) for cls in schema.SECTION_CLASSES.values())


def test_no_parser_module_exceeds_the_line_limit():
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines())
             for p in PARSER_DIR.glob("*.py")}
    assert {"configs.py", "validation.py", "schema.py", "loading.py"} <= set(sizes)
    too_long = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not too_long, f"parser/ modules over {MAX_LINES} lines: {too_long}"
