"""Running a parsed template over plain data, as Go's text/template executes.

Errors name where they happened as Go does (`template: :1:2: executing "" at <.Foo>:`)
and, for an unknown field, the fields that exist.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from typing import Any

from orchestrator.cli.gotmpl.errors import TemplateError, position
from orchestrator.cli.gotmpl.funcs import FUNCS, FuncError
from orchestrator.cli.gotmpl.parse import (
    Action,
    Block,
    Command,
    Field,
    Func,
    Literal,
    Node,
    Operand,
    Pipe,
    Sub,
    Template,
    Text,
)
from orchestrator.cli.gotmpl.values import camel, norm, resolved, text, truth, type_name

_MISSING = object()
Scope = ChainMap[str, Any]


def execute(template: Template, data: Any) -> str:
    out: list[str] = []
    _Run(template.source, out).nodes(template.nodes, data, ChainMap({"$": data}))
    return "".join(out)


class _Run:
    def __init__(self, source: str, out: list[str]):
        self.source = source
        self.out = out

    def fail(self, at: Field | Sub | Command | Func | Literal, message: str) -> TemplateError:
        where = position(self.source, at.pos)
        return TemplateError(f':{where}: executing "" at <{at.text}>: {message}')

    def nodes(self, nodes: tuple[Node, ...], dot: Any, scope: Scope) -> None:
        for node in nodes:
            if isinstance(node, Text):
                self.out.append(node.text)
            elif isinstance(node, Action):
                value = self.pipe(node.pipe, dot, scope)
                if not node.pipe.decls:
                    self.out.append(text(value))
            else:
                self.block(node, dot, scope)

    def block(self, node: Block, dot: Any, scope: Scope) -> None:
        inner = scope.new_child()
        value = resolved(self.pipe(node.pipe, dot, inner))
        if node.kind == "range":
            items = self.items(node, value)
            for key, item in items:
                each = inner.new_child()
                names = node.pipe.decls
                if len(names) == 2:
                    each[names[0]], each[names[1]] = key, item
                elif names:
                    each[names[0]] = item
                self.nodes(node.body, item, each)
            if not items:
                self.nodes(node.orelse, dot, inner)
        elif truth(value):
            self.nodes(node.body, value if node.kind == "with" else dot, inner)
        else:
            self.nodes(node.orelse, dot, inner)

    def items(self, node: Block, value: Any) -> list[tuple[Any, Any]]:
        if value is None:
            return []
        if isinstance(value, Mapping):
            return sorted(value.items())
        if isinstance(value, list | tuple):
            return list(enumerate(value))
        raise self.fail(node.pipe.cmds[0], f"range can't iterate over {text(value)}")

    def pipe(self, pipe: Pipe, dot: Any, scope: Scope) -> Any:
        value: Any = _MISSING
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, scope, value)
        for name in pipe.decls:
            if pipe.assign:
                owner = next((m for m in scope.maps if name in m), None)
                if owner is None:
                    raise TemplateError(f'undefined variable "{name}"')
                owner[name] = value
            else:
                scope[name] = value
        return value

    def command(self, cmd: Command, dot: Any, scope: Scope, final: Any) -> Any:
        first, rest = cmd.args[0], cmd.args[1:]
        args = [self.operand(a, dot, scope) for a in rest]
        if final is not _MISSING:
            args.append(final)
        if isinstance(first, Func):
            try:
                return FUNCS[first.name](*args)
            except FuncError as err:
                raise self.fail(cmd, f"error calling {first.name}: {err}") from None
            except (TypeError, ValueError) as err:
                raise self.fail(cmd, f"error calling {first.name}: {err}") from None
        value = self.operand(first, dot, scope, call=True)
        if callable(value):
            try:
                return value(*args)
            except TypeError as err:
                raise self.fail(cmd, f"wrong arguments for {first.text}: {err}") from None
        if args:
            raise self.fail(cmd, f"can't give argument to non-function {first.text}")
        return value

    def operand(self, op: Operand, dot: Any, scope: Scope, call: bool = False) -> Any:
        """An operand's value; a method-like field is left uncalled when `call` asks
        for it (the command calls it with its arguments)."""
        if isinstance(op, Literal):
            return op.value
        if isinstance(op, Func):
            raise self.fail(op, f"{op.name} takes arguments: call it in parentheses")
        if isinstance(op, Sub):
            base = self.pipe(op.pipe, dot, scope)
        elif op.var is None:
            base = dot
        elif op.var in scope:
            base = scope[op.var]
        else:
            raise self.fail(op, f'undefined variable "{op.var}"')
        for name in op.chain:
            base = self.field(op, base, name)
        return base if call else resolved(base)

    def field(self, op: Field | Sub, base: Any, name: str) -> Any:
        base = resolved(base)
        if base is None:
            raise self.fail(op, f"nil pointer evaluating {op.text}")
        if not isinstance(base, Mapping):
            raise self.fail(op, f"can't evaluate field {name} in type {type_name(base)}")
        if name in base:
            return base[name]
        want = norm(name)
        for key, value in base.items():
            if norm(key) == want:
                return value
        valid = ", ".join(sorted(camel(k) for k in base)) or "none"
        raise self.fail(op, f"can't evaluate field {name} (valid fields: {valid})")
