"""How a stack names and marks its objects, and how it finds them again (pure).

A stack owns no object of its own in the manager: it is a label. As `docker stack`
does, every network and service deployed from a compose file is named
`<stack>_<name>` and labelled `com.docker.stack.namespace=<stack>`; `stack ls`,
`ps`, `services` and `rm` find a stack's objects by that label only, never by a
name prefix (a user's service `web_x` is not part of stack `web`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from netagent.contract.errors import InvalidArgument

#: Docker's label: what marks a service or network as part of a stack.
NAMESPACE_LABEL = "com.docker.stack.namespace"
#: The network every service that names none is attached to.
DEFAULT_NETWORK = "default"
#: A stack name: it prefixes DNS labels, so letters, digits, '-' and '_' (docker also
#: refuses '.', which would split the label).
_STACK_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}\Z")


def check_stack_name(stack: str) -> str:
    """The stack name, or InvalidArgument naming it and what a name must be."""
    if not _STACK_RE.match(stack):
        raise InvalidArgument(
            f"invalid stack name {stack!r}: expected letters, digits, '-' or '_', "
            "starting with a letter or digit",
            obj=stack,
            op="stack",
        )
    return stack


def scoped(stack: str, name: str) -> str:
    """`web` of stack `shop` → `shop_web`: the name the manager knows the object by."""
    return f"{stack}_{name}"


def stack_labels(stack: str, labels: dict[str, str] | None = None) -> dict[str, str]:
    """The user's labels plus the namespace label (which always wins)."""
    return {**(labels or {}), NAMESPACE_LABEL: stack}


def stack_of(obj: dict) -> str | None:
    """The stack a service or network (as the API returns it) belongs to, if any."""
    return obj.get("spec", {}).get("labels", {}).get(NAMESPACE_LABEL)


def in_stack(objs: Iterable[dict], stack: str) -> list[dict]:
    """The objects of one stack, sorted by name."""
    return sorted((o for o in objs if stack_of(o) == stack), key=lambda o: o["spec"]["name"])


def stack_counts(services: Iterable[dict]) -> dict[str, int]:
    """Stack name → its number of services, for `stack ls` (a stack is its services)."""
    counts: dict[str, int] = {}
    for s in services:
        stack = stack_of(s)
        if stack is not None:
            counts[stack] = counts.get(stack, 0) + 1
    return dict(sorted(counts.items()))
