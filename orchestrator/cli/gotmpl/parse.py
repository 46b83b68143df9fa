"""Template text → tree: text, actions and the if/with/range blocks, as Go parses them.

Before parsing, the two-character escapes `\\t` and `\\n` become a tab and a newline,
as docker does for `--format` (a shell passes them literally).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from orchestrator.cli.gotmpl.errors import TemplateError, position
from orchestrator.cli.gotmpl.funcs import FUNCS

KEYWORDS = {"if", "with", "range", "else", "end"}
LITERALS: dict[str, Any] = {"true": True, "false": False, "nil": None}

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<str>"(?:[^"\\\n]|\\.)*")
    |(?P<raw>`[^`]*`)
    |(?P<decl>:=)
    |(?P<assign>=)
    |(?P<comma>,)
    |(?P<pipe>\|)
    |(?P<lp>\()
    |(?P<rp>\))
    |(?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    |(?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
    |(?P<dot>\.)
    |(?P<num>[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int
    spaced: bool  # whitespace came just before it


# Operands -------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """`.`, `.A.B`, `$`, `$x.A`: a variable (None: the dot) and a chain of field names."""

    var: str | None
    chain: tuple[str, ...]
    pos: int
    text: str


@dataclass(frozen=True)
class Literal:
    value: Any
    pos: int
    text: str


@dataclass(frozen=True)
class Func:
    name: str
    pos: int
    text: str


@dataclass(frozen=True)
class Sub:
    """A parenthesized pipeline, maybe followed by fields: `(index .X 0).Name`."""

    pipe: Pipe
    chain: tuple[str, ...]
    pos: int
    text: str


Operand = Field | Literal | Func | Sub


@dataclass(frozen=True)
class Command:
    args: tuple[Operand, ...]
    pos: int
    text: str


@dataclass(frozen=True)
class Pipe:
    decls: tuple[str, ...]  # variables the pipeline declares (:=) or assigns (=)
    assign: bool
    cmds: tuple[Command, ...]


# Nodes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Action:
    pipe: Pipe


@dataclass(frozen=True)
class Block:
    """`if`, `with` or `range` PIPE, its body and its else part."""

    kind: str
    pipe: Pipe
    body: tuple[Node, ...]
    orelse: tuple[Node, ...]


Node = Text | Action | Block


@dataclass(frozen=True)
class Template:
    source: str
    nodes: tuple[Node, ...] = field(default=())


@lru_cache(maxsize=64)
def parse(template: str) -> Template:
    source = template.replace("\\t", "\t").replace("\\n", "\n")
    return Template(source, _Parser(source).parse())


class _Parser:
    def __init__(self, source: str):
        self.source = source
        self.items = _split(source)
        self.at = 0

    def fail(self, offset: int, message: str) -> TemplateError:
        return TemplateError(f":{position(self.source, offset).split(':')[0]}: {message}")

    def parse(self) -> tuple[Node, ...]:
        nodes, stop, _ = self.parse_list()
        if stop is not None:
            raise self.fail(stop.pos, f"unexpected {{{{{stop.text}}}}}")
        return nodes

    def parse_list(self) -> tuple[tuple[Node, ...], Token | None, list[Token]]:
        """Nodes up to an `else` or `end` (returned with the tokens after it) or the end."""
        nodes: list[Node] = []
        while self.at < len(self.items):
            kind, body, offset = self.items[self.at]
            self.at += 1
            if kind == "text":
                if body:
                    nodes.append(Text(body))
                continue
            tokens = self.lex(body, offset)
            if not tokens:
                raise self.fail(offset, "missing value for command")
            head = tokens[0]
            if head.kind == "ident" and head.text in ("else", "end"):
                return tuple(nodes), head, tokens[1:]
            if head.kind == "ident" and head.text in ("if", "with", "range"):
                nodes.append(self.block(head, tokens[1:]))
            else:
                nodes.append(Action(self.pipe(tokens, offset)))
        return tuple(nodes), None, []

    def block(self, head: Token, tokens: list[Token]) -> Block:
        pipe = self.pipe(tokens, head.pos)
        body, stop, rest = self.parse_list()
        orelse: tuple[Node, ...] = ()
        if stop is None:
            raise self.fail(len(self.source), f"unexpected EOF in {head.text}")
        if stop.text == "else":
            if rest and rest[0].kind == "ident" and rest[0].text in ("if", "with"):
                orelse = (self.block(rest[0], rest[1:]),)  # `else if`: one shared end
            elif rest:
                raise self.fail(rest[0].pos, f"unexpected {rest[0].text!r} in else")
            else:
                orelse, stop, rest = self.parse_list()
                if stop is None or stop.text != "end":
                    raise self.fail(len(self.source), f"expected end; found {_seen(stop)}")
        if stop.text == "end" and rest:
            raise self.fail(rest[0].pos, f"unexpected {rest[0].text!r} in end")
        return Block(head.text, pipe, body, orelse)

    def lex(self, body: str, offset: int) -> list[Token]:
        tokens: list[Token] = []
        i, spaced = 0, True
        while i < len(body):
            m = _TOKEN.match(body, i)
            if not m:
                raise self.fail(offset + i, f"unexpected {body[i]!r} in command")
            kind = m.lastgroup or ""
            if kind == "ws":
                spaced = True
            else:
                tokens.append(Token(kind, m.group(), offset + i, spaced))
                spaced = False
            i = m.end()
        return tokens

    def pipe(self, tokens: list[Token], offset: int) -> Pipe:
        decls, assign = self.decls(tokens)
        tokens = tokens[2 * len(decls) :] if decls else tokens
        cmds: list[list[Token]] = [[]]
        depth = 0
        for t in tokens:
            depth += (t.kind == "lp") - (t.kind == "rp")
            if t.kind == "pipe" and depth == 0:
                cmds.append([])
            else:
                cmds[-1].append(t)
        if any(not c for c in cmds):
            raise self.fail(offset, "missing value for command")
        return Pipe(decls, assign, tuple(self.command(c) for c in cmds))

    def decls(self, tokens: list[Token]) -> tuple[tuple[str, ...], bool]:
        """`$x :=`, `$k, $v :=` or `$x =` at the start of a pipeline."""
        names: list[str] = []
        i = 0
        while i + 1 < len(tokens) and tokens[i].kind == "var" and "." not in tokens[i].text:
            names.append(tokens[i].text)
            if tokens[i + 1].kind in ("decl", "assign"):
                return tuple(names), tokens[i + 1].kind == "assign"
            if tokens[i + 1].kind != "comma":
                break
            i += 2
        return (), False

    def command(self, tokens: list[Token]) -> Command:
        args: list[Operand] = []
        i = 0
        while i < len(tokens):
            operand, i = self.operand(tokens, i)
            args.append(operand)
        if isinstance(args[0], Literal) and len(args) > 1:
            raise self.fail(tokens[0].pos, f"can't give argument to non-function {args[0].text}")
        start, end = tokens[0].pos, tokens[-1].pos + len(tokens[-1].text)
        return Command(tuple(args), start, self.source[start:end])

    def operand(self, tokens: list[Token], i: int) -> tuple[Operand, int]:
        t = tokens[i]
        if t.kind == "lp":
            depth, j = 0, i
            for j in range(i, len(tokens)):
                depth += (tokens[j].kind == "lp") - (tokens[j].kind == "rp")
                if depth == 0:
                    break
            if depth:
                raise self.fail(t.pos, "unclosed left paren")
            chain: tuple[str, ...] = ()
            end = tokens[j].pos + 1
            if j + 1 < len(tokens) and tokens[j + 1].kind == "field" and not tokens[j + 1].spaced:
                chain = tuple(tokens[j + 1].text.split(".")[1:])
                end = tokens[j + 1].pos + len(tokens[j + 1].text)
                j += 1
            inner = self.pipe(tokens[i + 1 : j - (1 if chain else 0)], t.pos)
            return Sub(inner, chain, t.pos, self.source[t.pos : end]), j + 1
        return self.single(t), i + 1

    def single(self, t: Token) -> Operand:
        if t.kind == "field":
            return Field(None, tuple(t.text.split(".")[1:]), t.pos, t.text)
        if t.kind == "dot":
            return Field(None, (), t.pos, t.text)
        if t.kind == "var":
            var, *chain = t.text.split(".")
            return Field(var, tuple(chain), t.pos, t.text)
        if t.kind == "str":
            return Literal(ast.literal_eval(t.text), t.pos, t.text)
        if t.kind == "raw":
            return Literal(t.text[1:-1], t.pos, t.text)
        if t.kind == "num":
            value = float(t.text) if any(c in t.text for c in ".eE") else int(t.text)
            return Literal(value, t.pos, t.text)
        if t.kind == "ident":
            if t.text in LITERALS:
                return Literal(LITERALS[t.text], t.pos, t.text)
            if t.text in KEYWORDS:
                raise self.fail(t.pos, f"unexpected <{t.text}> in command")
            if t.text not in FUNCS:
                raise self.fail(t.pos, f'function "{t.text}" not defined')
            return Func(t.text, t.pos, t.text)
        raise self.fail(t.pos, f"unexpected {t.text!r} in operand")


def _seen(stop: Token | None) -> str:
    return "EOF" if stop is None else f"{{{{{stop.text}}}}}"


def _split(source: str) -> list[tuple[str, str, int]]:
    """(kind, text, offset) items: text between actions, and each action's inside with
    Go's trim markers (`{{- ` and ` -}}`) applied and comments dropped."""
    items: list[tuple[str, str, int]] = []
    i, trim_next = 0, False
    while True:
        j = source.find("{{", i)
        text = source[i:] if j < 0 else source[i:j]
        if trim_next:
            text = text.lstrip()
        if j < 0:
            items.append(("text", text, i))
            return items
        k = j + 2
        if source[k : k + 1] == "-" and source[k + 1 : k + 2].isspace():
            text, k = text.rstrip(), k + 1
        items.append(("text", text, i))
        end = _close(source, k)
        inner_end, trim_next = end, False
        if source[end - 1 : end] == "-" and source[end - 2 : end - 1].isspace() and end - 1 > k:
            inner_end, trim_next = end - 1, True
        inner = source[k:inner_end]
        if not (inner.strip().startswith("/*") and inner.strip().endswith("*/")):
            items.append(("action", inner, k))
        i = end + 2


def _close(source: str, k: int) -> int:
    """Where the action opened before `k` closes, skipping `}}` inside quoted strings."""
    i = k
    while i < len(source):
        c = source[i]
        if c in "\"`'":
            i = _skip_quoted(source, i)
            continue
        if source.startswith("}}", i):
            return i
        i += 1
    raise TemplateError(f":{position(source, k).split(':')[0]}: unclosed action")


def _skip_quoted(source: str, i: int) -> int:
    quote, i = source[i], i + 1
    while i < len(source) and source[i] != quote:
        i += 2 if source[i] == "\\" and quote != "`" else 1
    return i + 1
