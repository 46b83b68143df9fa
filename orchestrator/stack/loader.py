"""Compose files from disk to one raw mapping: read, interpolate `${VAR}`, merge.

No kernel object and no API call: this is the text stage, before `compose.py`
types the result. Three steps, in docker's order:

1. Read each file with YAML 1.2 scalars: `8080:80` stays the string it looks like
   (YAML 1.1 would read it as the base-60 integer 484880, a classic compose
   trap), and only true/false are booleans (`yes` stays a string).
2. Interpolate every string value (never a key) from the environment, like docker:
   `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset),
   `${VAR:?message}` / `${VAR?message}` (required) and `$$` for a literal `$`. An
   unset variable without a default becomes "" with a warning, as docker warns.
3. Merge the files left to right (`-c base.yml -c override.yml`) the way the
   docker CLI's loader does: mappings merge key by key, scalars and `command` are
   replaced, `ports` merge by published port and protocol, `environment`,
   `labels` and service `networks` merge as mappings whichever form (list or
   mapping) each file used, and other lists are appended.

Errors name the file (reading) or the key path (interpolation); nothing here
decides whether a key is valid — that is `compose.py`'s job on the merged result.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from netagent.contract.errors import InvalidArgument

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 numbers and booleans (see the module docstring)."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT, _BOOL)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# A YAML 1.1 octal (a file mode, `mode: 0440`) stays text: YAML 1.2 would read the
# decimal 440, where docker reads 0o440; the field that takes it reads it as octal.
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:str", re.compile(r"^0[0-7]+\Z"), ["0"])
_Yaml12Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)\Z"), list("tTfF")
)
_Yaml12Loader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+)\Z"), list("-+0123456789")
)
_Yaml12Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)

# `$$`, `$NAME`, `${...}`, or a `$` followed by anything else (invalid).
_VAR_RE = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<named>[_A-Za-z][_A-Za-z0-9]*)|\{(?P<braced>[^}]*)\}|)"
)
_BRACED_RE = re.compile(r"^(?P<name>[_A-Za-z][_A-Za-z0-9]*)(?:(?P<op>:?[-?])(?P<arg>.*))?\Z", re.S)


_PLAIN_KEY = re.compile(r"[\w-]+")


def key_path(parts: Sequence[object]) -> str:
    """("services", "web", "ports", 0) → services.web.ports.0; odd keys quoted, so that a
    key holding a newline or a dot still gives one unambiguous line."""
    return ".".join(str(p) if _PLAIN_KEY.fullmatch(str(p)) else repr(str(p)) for p in parts)


def read_file(path: str, stdin_text: str | None = None) -> dict:
    """One compose file as a mapping; `-` reads standard input."""
    where = "standard input" if path == "-" else path
    try:
        if path != "-":
            text = Path(path).read_text()
        else:
            text = sys.stdin.read() if stdin_text is None else stdin_text
    except OSError as err:
        raise InvalidArgument(
            f"cannot read compose file {path}: {err.strerror or err}", obj=path, op="read"
        ) from None
    try:
        doc = yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise InvalidArgument(
            f"{where}: invalid YAML{at}: {problem}", obj=path, op="read"
        ) from None
    if not isinstance(doc, dict):
        got = "an empty file" if doc is None else type(doc).__name__
        raise InvalidArgument(
            f"{where}: expected a mapping of top-level keys (services, networks...), got {got}",
            obj=path,
            op="read",
        )
    return doc


def interpolate(
    doc: Any, env: Mapping[str, str], warnings: list[str], path: tuple[str, ...] = ()
) -> Any:
    """`doc` with `${VAR}` references in string values replaced from `env`."""
    if isinstance(doc, dict):
        return {k: interpolate(v, env, warnings, (*path, str(k))) for k, v in doc.items()}
    if isinstance(doc, list):
        return [interpolate(v, env, warnings, (*path, str(i))) for i, v in enumerate(doc)]
    if isinstance(doc, str) and "$" in doc:
        return _substitute(doc, env, warnings, key_path(path))
    return doc


def _substitute(text: str, env: Mapping[str, str], warnings: list[str], where: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        if m.group("named"):
            return _lookup(m.group("named"), None, "", env, warnings, where)
        braced = m.group("braced")
        parsed = _BRACED_RE.match(braced) if braced is not None else None
        if parsed is None:
            raise InvalidArgument(
                f"{where}: invalid interpolation format in {text!r}: expected $VAR, ${{VAR}}, "
                "${VAR:-default} or ${VAR:?error} (write $$ for a literal $)",
                obj=text,
                op="interpolate",
            )
        return _lookup(parsed["name"], parsed["op"], parsed["arg"] or "", env, warnings, where)

    return _VAR_RE.sub(one, text)


def _lookup(
    name: str, op: str | None, arg: str, env: Mapping[str, str], warnings: list[str], where: str
) -> str:
    value = env.get(name)
    # With a colon, an empty value counts as unset (docker's and the shell's rule).
    unset = value is None or (op is not None and op.startswith(":") and value == "")
    if not unset:
        return value or ""
    if op in ("-", ":-"):
        return arg
    if op in ("?", ":?"):
        raise InvalidArgument(
            f"{where}: required variable {name} is missing a value" + (f": {arg}" if arg else ""),
            obj=name,
            op="interpolate",
        )
    if value is None:
        warning = f'The "{name}" variable is not set. Defaulting to a blank string.'
        if warning not in warnings:
            warnings.append(warning)
    return ""


# -- merging ---------------------------------------------------------------------------------

#: Service keys whose list form is a mapping in disguise ("K=V" items, or network names).
_MAPPING_LISTS = ("environment", "labels", "networks")
#: Service keys an override replaces whole (a command is one value, not a list of extras).
_REPLACED = ("command", "entrypoint")


def merge_files(docs: Sequence[dict]) -> dict:
    """The documents merged left to right (see the module docstring for the rules)."""
    merged: dict = {}
    for doc in docs:
        for key, value in doc.items():
            if key == "services" and isinstance(value, dict) and isinstance(merged.get(key), dict):
                services = dict(merged[key])
                for name, svc in value.items():
                    base = services.get(name)
                    services[name] = (
                        _merge_service(base, svc)
                        if isinstance(base, dict) and isinstance(svc, dict)
                        else svc
                    )
                merged[key] = services
            else:
                merged[key] = _merge(merged.get(key), value)
    return merged


def _merge_service(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        old = out.get(key)
        if key in _REPLACED or old is None:
            out[key] = value
        elif key == "ports" and isinstance(old, list) and isinstance(value, list):
            out[key] = _merge_ports(old, value)
        elif key in _MAPPING_LISTS:
            out[key] = _merge(_as_mapping(old), _as_mapping(value))
        elif key == "deploy" and isinstance(old, dict) and isinstance(value, dict):
            deploy = _merge(old, {k: v for k, v in value.items() if k != "labels"})
            if "labels" in value:
                deploy["labels"] = _merge(
                    _as_mapping(old.get("labels")), _as_mapping(value["labels"])
                )
            out[key] = deploy
        else:
            out[key] = _merge(old, value)
    return out


def _merge(base: Any, override: Any) -> Any:
    """Mappings key by key, lists appended (without exact repeats), the rest replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = _merge(out.get(k), v) if k in out else v
        return out
    if isinstance(base, list) and isinstance(override, list):
        return base + [v for v in override if v not in base]
    # `front:` with no value declares a network with defaults: it must not erase a base one.
    if override is None and isinstance(base, dict):
        return base
    return override


def _as_mapping(value: Any) -> Any:
    """["K=V", "K2"] → {"K": "V", "K2": None}; other shapes unchanged (compose.py reports)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return value
    out: dict[str, str | None] = {}
    for item in value:
        k, sep, v = item.partition("=")
        out[k] = v if sep else None
    return out


def _merge_ports(base: list, override: list) -> list:
    """An override's port replaces the base's port with the same published port/protocol."""
    keyed = {_port_key(p): p for p in base}
    for p in override:
        keyed[_port_key(p)] = p
    return list(keyed.values())


def _port_key(port: Any) -> str:
    if isinstance(port, dict):
        return f"{port.get('published')}/{port.get('protocol') or 'tcp'}"
    text = str(port)
    ports, _, proto = text.partition("/")
    return f"{ports.split(':')[0] if ':' in ports else ports}/{proto or 'tcp'}"


def load(
    paths: Sequence[str], env: Mapping[str, str], stdin_text: str | None = None
) -> tuple[dict, list[str]]:
    """Read, interpolate and merge compose files: (one raw mapping, warnings)."""
    if not paths:
        raise InvalidArgument("no compose file given: expected -c FILE", op="stack deploy")
    warnings: list[str] = []
    docs = [interpolate(read_file(p, stdin_text), env, warnings) for p in paths]
    return merge_files(docs), warnings
