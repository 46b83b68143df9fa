"""The built-in images: what IMAGE[:TAG] names both sides agree on.

The manager refuses an unknown image before it stores a service (`check_image`); the
agent maps the same name to the program it runs (netagent.tasks.workloads). Only the
standard library and the error family are imported: every task's start-up reads this.
"""

from __future__ import annotations

import re
from types import MappingProxyType

from netagent.contract.errors import InvalidArgument

#: Image name → canonical workload.
KNOWN_IMAGES: MappingProxyType[str, str] = MappingProxyType(
    {
        "whoami": "whoami",
        "nginx": "whoami",
        "slowreply": "slowreply",
        "host": "host",
        "alpine": "host",
        "busybox": "host",
    }
)
DEFAULT_TAG = "latest"
# Docker's tag grammar: [\w][\w.-]{0,127}.
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def _known_list() -> str:
    return ", ".join(sorted(KNOWN_IMAGES))


def check_image(image: str) -> tuple[str, str]:
    """(canonical workload, tag) of an "IMAGE[:TAG]" name, or InvalidArgument."""
    name, sep, tag = image.partition(":") if isinstance(image, str) else ("", "", "")
    if name not in KNOWN_IMAGES:
        raise InvalidArgument(
            f"unknown image {image!r}: expected one of {_known_list()} (optionally :TAG)",
            obj=image,
            op="check image",
        )
    if not sep:
        return KNOWN_IMAGES[name], DEFAULT_TAG
    if not _TAG_RE.fullmatch(tag):
        raise InvalidArgument(
            f"invalid tag {tag!r} in image {image!r}: expected 1-128 letters, digits, "
            "'_', '.' or '-', not starting with '.' or '-'",
            obj=image,
            op="check image",
        )
    return KNOWN_IMAGES[name], tag
