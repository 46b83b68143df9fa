"""`vxswarm secret create|ls|inspect|rm` and `vxswarm config create|ls|inspect|rm`.

One group per kind, made by `file_group`: the two differ only in their words, in
`ls`'s DRIVER column (docker shows one for secrets) and in what `inspect --pretty`
shows (a config's data; never a secret's, which no API answer holds).
"""

from __future__ import annotations

import base64
import sys
import time
from typing import Any

import click

from netagent.contract.errors import InvalidArgument
from orchestrator.cli.common import DockerGroup, api, inspect_options
from orchestrator.cli.filters import FILE_KEYS, Filters
from orchestrator.cli.format import ago
from orchestrator.cli.output import Columns, columns, echo_inspect, echo_rows, listing_options


def read_data(source: str) -> bytes:
    """The bytes of FILE, or of stdin for '-' (docker's `secret create NAME -`)."""
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        with open(source, "rb") as f:
            return f.read()
    except OSError as err:
        raise InvalidArgument(f"cannot read {source}: {err.strerror}", obj=source) from None


def parse_labels(labels: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in labels:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid label {item!r}: expected KEY=VALUE", obj=item)
        out[key] = value if sep else ""
    return out


def _stamp(ts: float) -> str:
    """docker's `inspect --pretty` time: 2016-11-18 22:59:10.248197212 +0000 utc."""
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e9):09d} +0000 utc"
    )


def pretty_text(obj: dict[str, Any], kind: str) -> str:
    lines = [f"ID:              {obj['id']}", f"Name:            {obj['spec']['name']}"]
    labels = obj["spec"].get("labels") or {}
    if labels:
        lines.append("Labels:")
        lines += [f" - {k}={v}" for k, v in sorted(labels.items())]
    if kind == "secret":
        lines.append("Driver:")
    lines += [
        f"Created at:      {_stamp(obj['created_at'])}",
        f"Updated at:      {_stamp(obj['updated_at'])}",
    ]
    if kind == "config":
        lines += ["Data:", base64.b64decode(obj["data"]).decode(errors="replace")]
    return "\n".join(lines)


def listing_columns(kind: str) -> Columns:
    """docker's `secret ls` (with a DRIVER column) and `config ls` (without)."""
    driver = "\t{{.Driver}}" if kind == "secret" else ""
    return columns(
        f"table {{{{.ID}}}}\t{{{{.Name}}}}{driver}\t{{{{.CreatedAt}}}}\t{{{{.UpdatedAt}}}}",
        ["ID", "Name", *(["Driver"] if driver else []), "CreatedAt", "UpdatedAt", "Labels"],
        CreatedAt="CREATED",
        UpdatedAt="UPDATED",
    )


def file_row(obj: dict[str, Any]) -> dict[str, Any]:
    labels = obj["spec"].get("labels") or {}
    return {
        "CreatedAt": ago(obj["created_at"]),
        "Driver": "",
        "ID": obj["id"],
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Name": obj["spec"]["name"],
        "UpdatedAt": ago(obj["updated_at"]),
    }


def file_group(kind: str) -> click.Group:
    """The `secret` or `config` command group."""
    plural = f"{kind}s"

    @click.group(name=kind, cls=DockerGroup, help=f"Manage Swarm {plural}.")
    def group() -> None:
        pass

    @group.command(help=f"Create a {kind} from a file or STDIN as content.")
    @click.option("-l", "--label", "labels", multiple=True, help=f"{kind.title()} labels.")
    @click.argument("name")
    @click.argument("file", metavar="FILE|-")
    def create(labels: tuple[str, ...], name: str, file: str) -> None:
        body = {
            "name": name,
            "labels": parse_labels(labels),
            "data": base64.b64encode(read_data(file)).decode(),
        }
        click.echo(api().post(f"/v1/{plural}", body)["id"])

    cols = listing_columns(kind)

    @group.command("ls", help=f"List {plural}.")
    @listing_options(FILE_KEYS)
    def ls(filters: Filters, quiet: bool, fmt: str) -> None:
        objs = filters.apply(sorted(api().get(f"/v1/{plural}"), key=lambda o: o["spec"]["name"]))
        echo_rows(objs, fmt, quiet, lambda objs: [file_row(o) for o in objs], cols)

    @group.command(help=f"Display detailed information on one or more {plural}.")
    @inspect_options()
    def inspect(fmt: str, pretty: bool, refs: tuple[str, ...]) -> None:
        if pretty and fmt != "json":
            raise click.UsageError("--format is incompatible with human friendly format")
        objs = [api().get(f"/v1/{plural}/{r}") for r in refs]
        if pretty:
            click.echo("\n\n".join(pretty_text(o, kind) for o in objs))
        else:
            echo_inspect(objs, fmt)

    @group.command("rm", help=f"Remove one or more {plural}.")
    @click.argument("refs", nargs=-1, required=True)
    def rm(refs: tuple[str, ...]) -> None:
        for r in refs:
            api().delete(f"/v1/{plural}/{r}")
            click.echo(r)

    return group


secret = file_group("secret")
config = file_group("config")
