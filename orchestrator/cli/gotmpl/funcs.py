"""The functions a template can call: Go's built-ins and the ones docker adds."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.cli.gotmpl.values import resolved, text, to_json, truth, type_name


class FuncError(Exception):
    """A function refused its arguments; the executor adds where it was called."""


def index(value: Any, *keys: Any) -> Any:
    """Go's `index`: a map's value by key (a missing key: empty) or a list's item."""
    for key in keys:
        value = resolved(value)
        if isinstance(value, Mapping):
            value = value.get(key, "")
        elif isinstance(value, list | tuple | str):
            if not isinstance(key, int) or isinstance(key, bool):
                raise FuncError(f"cannot index slice/array with type {type_name(key)}")
            if not 0 <= key < len(value):
                raise FuncError(f"index out of range: {key}")
            value = value[key]
        else:
            raise FuncError(f"can't index item of type {type_name(value)}")
    return value


def length(value: Any) -> int:
    value = resolved(value)
    if isinstance(value, str | list | tuple | Mapping):
        return len(value)
    raise FuncError(f"len of type {type_name(value)}")


def join(items: Any, sep: str) -> str:
    items = resolved(items)
    if not isinstance(items, list | tuple):
        raise FuncError(f"wrong type for value; expected []string; got {type_name(items)}")
    return sep.join(text(i) for i in items)


def title(s: Any) -> str:
    """Go's strings.Title: each word's first letter upper-cased, the rest left alone."""
    return re.sub(r"(^|\s)(\S)", lambda m: m.group(1) + m.group(2).upper(), text(s))


def go_print(*args: Any) -> str:
    """fmt.Sprint: a space between two operands when neither is a string."""
    out = ""
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out += " "
        out += text(a)
    return out


_VERB = re.compile(r"%([-+ #0]*\d*(?:\.\d+)?)([a-zA-Z%])")


def printf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf for the verbs templates use: %s %v %d %q %f %t %x and %%."""
    queue = list(args)

    def one(m: re.Match[str]) -> str:
        flags, verb = m.groups()
        if verb == "%":
            return "%"
        if not queue:
            return f"%!{verb}(MISSING)"
        value = resolved(queue.pop(0))
        if verb == "q":
            return f"%{flags}s" % to_json(text(value))
        if verb in "dxXf" and isinstance(value, int | float) and not isinstance(value, bool):
            return f"%{flags}{verb}" % value
        return f"%{flags}s" % text(value)

    out = _VERB.sub(one, fmt)
    return out + (f"%!(EXTRA {', '.join(text(a) for a in queue)})" if queue else "")


def _compare(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        a, b = resolved(a), resolved(b)
        try:
            return op(a, b)
        except TypeError:
            raise FuncError(
                f"incompatible types for comparison: {type_name(a)}, {type_name(b)}"
            ) from None

    return compare


def eq(a: Any, *others: Any) -> bool:
    """Go's eq: true if the first argument equals any of the others."""
    a = resolved(a)
    return any(a == resolved(b) for b in others)


def go_and(*args: Any) -> Any:
    for a in args:
        if not truth(a):
            return a
    return args[-1]


def go_or(*args: Any) -> Any:
    for a in args:
        if truth(a):
            return a
    return args[-1]


FUNCS: dict[str, Callable[..., Any]] = {
    # docker's own (github.com/docker/cli/templates)
    "json": to_json,
    "join": join,
    "split": lambda s, sep: text(s).split(sep),
    "upper": lambda s: text(s).upper(),
    "lower": lambda s: text(s).lower(),
    "title": title,
    "pad": lambda s, before, after: " " * before + text(s) + " " * after,
    "truncate": lambda s, n: text(s)[:n],
    "println": lambda *a: " ".join(text(x) for x in a) + "\n",
    # Go's built-ins
    "index": index,
    "len": length,
    "print": go_print,
    "printf": printf,
    "eq": eq,
    "ne": _compare(lambda a, b: a != b),
    "lt": _compare(lambda a, b: a < b),
    "le": _compare(lambda a, b: a <= b),
    "gt": _compare(lambda a, b: a > b),
    "ge": _compare(lambda a, b: a >= b),
    "and": go_and,
    "or": go_or,
    "not": lambda a: not truth(a),
}
