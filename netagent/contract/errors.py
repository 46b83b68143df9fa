"""The one error family of vxswarm, shared by the data plane and the control plane.

Every error names the object it is about and the operation that failed; kernel
errors also carry the errno so callers branch on numbers, never on message text.
The CLI prints `str(err)` as one line and exits non-zero.
"""

from __future__ import annotations


class VxswarmError(Exception):
    """Base of all vxswarm errors: one clear line for a human."""

    #: HTTP status the API answers with when this error reaches a handler.
    http_status = 500

    def __init__(self, message: str, *, obj: str | None = None, op: str | None = None):
        super().__init__(message)
        self.obj = obj
        self.op = op


class InvalidArgument(VxswarmError):
    """Input that does not parse or is out of range; nothing was changed."""

    http_status = 400


class NotFound(VxswarmError):
    """A named object does not exist."""

    http_status = 404


class Conflict(VxswarmError):
    """The request clashes with existing state (in use, overlapping, duplicate name)."""

    http_status = 409


class PermissionDenied(VxswarmError):
    """A token or node secret was refused."""

    http_status = 403


class Unavailable(VxswarmError):
    """The daemon cannot serve this now (not a manager, not in a swarm, manager unreachable)."""

    http_status = 503


class KernelError(VxswarmError):
    """A netlink, iptables or process operation failed; `errno` says why."""

    def __init__(self, message: str, *, obj: str, op: str, errno: int | None = None):
        super().__init__(message, obj=obj, op=op)
        self.errno = errno


#: Map used by the API client to turn an error body back into the same class.
ERRORS_BY_NAME: dict[str, type[VxswarmError]] = {
    cls.__name__: cls
    for cls in (VxswarmError, InvalidArgument, NotFound, Conflict, PermissionDenied, Unavailable)
}
