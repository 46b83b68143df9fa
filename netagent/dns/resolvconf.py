"""A task's /etc/resolv.conf: `/etc/netns/<netns>/resolv.conf`, pointing at 127.0.0.11.

Owns that one file (and its directory when it made it). `ip netns exec` bind-mounts
every file of /etc/netns/<netns>/ over /etc in the mount namespace it creates, at
exec time, so the file must exist *before* the task's process is spawned; a file
written later is not seen by a running task.

`options ndots:0`: every name is first tried as written, so `web` reaches the
resolver as `web`, not `web.<search domain>` (the resolver knows exact names only).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

from netagent.contract.errors import InvalidArgument
from netagent.dns.resolver import RESOLVER_IP
from netagent.kernel import netns

_DOMAIN_RE = re.compile(r"^(?=.{1,253}\Z)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?)+\Z")


def resolv_conf_path(ns: str) -> Path:
    return netns.NETNS_ETC_DIR / netns.check_ns_name(ns) / "resolv.conf"


def render(search: Sequence[str] = ()) -> str:
    """The file's text; InvalidArgument names a bad search domain."""
    for domain in search:
        if not isinstance(domain, str) or not _DOMAIN_RE.match(domain):
            raise InvalidArgument(
                f"invalid search domain {domain!r}: expected a DNS name such as 'example.com'",
                obj=str(domain),
                op="resolv.conf",
            )
    lines = [f"nameserver {RESOLVER_IP}"]
    if search:
        lines.append("search " + " ".join(search))
    lines.append("options ndots:0")
    return "\n".join(lines) + "\n"


def write_resolv_conf(ns: str, search: Sequence[str] = ()) -> Path:
    """Write /etc/netns/<ns>/resolv.conf (atomically: a rename); its path."""
    path = resolv_conf_path(ns)
    text = render(search)
    with netns.kernel_errors(str(path), "write resolv.conf"):
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o755)  # `ip netns exec` binds it over the task's /etc
        tmp = path.with_name(f".resolv.conf.{os.getpid()}")
        tmp.write_text(text)
        os.chmod(tmp, 0o644)  # every program of the task reads it, whatever the umask
        os.replace(tmp, path)
    return path


def remove_resolv_conf(ns: str) -> None:
    """Remove the file, and its directory once empty; nothing if already gone."""
    path = resolv_conf_path(ns)
    with netns.kernel_errors(str(path), "remove resolv.conf"):
        path.unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError, OSError):
            path.parent.rmdir()  # OSError: other files of the namespace still there
