"""How Go's templates see plain data: printing, truth, JSON, field names."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

#: Where Go capitalises a whole word in a field name (`ID`, `VNI`), not just its first letter.
ACRONYMS = {"id": "ID", "ids": "IDs", "ip": "IP", "vni": "VNI", "vip": "VIP", "vips": "VIPs"}


def norm(name: str) -> str:
    """The form two field names are compared in: `CreatedAt` and `created_at` agree."""
    return name.replace("_", "").replace("-", "").lower()


def camel(key: str) -> str:
    """A JSON key as a docker user types it: `created_at` → `CreatedAt`, `id` → `ID`."""
    if "_" not in key and key[:1].isupper():
        return key
    return "".join(ACRONYMS.get(p, p[:1].upper() + p[1:]) for p in key.split("_"))


def resolved(value: Any) -> Any:
    """A listing's computed field (a callable taking no argument) as its value."""
    return value() if callable(value) and not _method(value) else value


def text(value: Any) -> str:
    """A value printed as Go's fmt prints it with %v."""
    value = resolved(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{text(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(text(v) for v in value) + "]"
    return str(value)


def truth(value: Any) -> bool:
    """Go's truth: false, 0, nil and empty strings, lists and maps are false."""
    value = resolved(value)
    if value is None or value is False:
        return False
    if isinstance(value, int | float | str | list | tuple | Mapping):
        return bool(value)
    return True


def plain(value: Any) -> Any:
    """Data ready for JSON: method-like fields taking arguments (`.Label "k"`) left out,
    as Go's encoder leaves out methods."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items() if not _method(v)}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return resolved(value)


def _method(value: Any) -> bool:
    return callable(value) and getattr(value, "takes_args", False)


def to_json(value: Any) -> str:
    """docker's `json` function: compact, HTML characters kept as they are."""
    return json.dumps(plain(value), separators=(",", ":"), ensure_ascii=False, default=str)


def type_name(value: Any) -> str:
    """The Go type a value would have, for error messages."""
    names: dict[type, str] = {str: "string", bool: "bool", int: "int", float: "float64"}
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, list | tuple):
        return "slice"
    return names.get(type(value), type(value).__name__)


def method(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a listing field that takes arguments (docker's `{{.Label "key"}}`)."""
    fn.takes_args = True  # type: ignore[attr-defined]
    return fn
