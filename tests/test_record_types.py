"""The typed records as mypy sees them agree with the Structs `consumer.records` builds from the table.

mypy cannot read a class built at run time, so `consumer.records` declares `CanonicalRecord` and
`CanonicalProperties` for it under `TYPE_CHECKING`. These tests build those declarations (their source,
run as a module of their own) and compare them with the run-time Structs: same fields in the same
order, same types but for the bounds (`Annotated`), same defaults and required fields, same options.
"""

from __future__ import annotations

import __future__
import ast
import sys
import types
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import msgspec
import pytest

import consumer.records as records

STRUCTS = ("CanonicalRecord", "CanonicalProperties")


def _static_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The `if TYPE_CHECKING:` block of consumer/records.py, run in a copy of the module's namespace."""
    path = Path(records.__file__)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    blocks = [node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"]
    assert len(blocks) == 1, "consumer/records.py has one `if TYPE_CHECKING:` block at module level"
    module = types.ModuleType("static_records")
    module.__dict__.update({k: v for k, v in vars(records).items() if k not in STRUCTS and not k.startswith("__")})
    module.__dict__["__name__"] = module.__name__
    monkeypatch.setitem(sys.modules, module.__name__, module)  # msgspec resolves annotations through it
    code = compile(ast.Module(body=blocks[0].body, type_ignores=[]), str(path), "exec",
                   flags=__future__.annotations.compiler_flag, dont_inherit=True)
    exec(code, module.__dict__)
    return module


def _plain(tp: Any) -> Any:
    """A field type without its bounds, unions as sets, Structs by name (the two modules' differ)."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _plain(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return frozenset(_plain(arg) for arg in get_args(tp))
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return tp.__name__
    return tp


def _shape(struct: type[msgspec.Struct]) -> list[tuple[str, Any, bool, Any]]:
    return [(f.name, _plain(f.type), f.required, f.default) for f in msgspec.structs.fields(struct)]


def _options(struct: type[msgspec.Struct]) -> dict[str, Any]:
    config = struct.__struct_config__
    return {name: getattr(config, name) for name in dir(config) if not name.startswith("_")}


@pytest.mark.parametrize("name", STRUCTS)
def test_static_declaration_matches_the_built_struct(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    static = getattr(_static_module(monkeypatch), name)
    built = getattr(records, name)
    assert static is not built
    assert _shape(static) == _shape(built)
    assert _options(static) == _options(built)


def test_plain_types_tell_bounded_and_unbounded_apart() -> None:
    """The comparison sees a wrong type: the bounds are dropped, the type under them is not."""
    fields = {f.name: f.type for f in msgspec.structs.fields(records.CanonicalProperties)}
    assert _plain(fields["DeliveryAttempts"]) == frozenset({int, type(None)})
    assert _plain(fields["Quantity"]) == frozenset({float, type(None)})
    assert _plain(fields["Quantity"]) != _plain(fields["DeliveryAttempts"])
