"""A client of etcd's v3 JSON gateway, over the member's unix socket.

Why this and not a gRPC library (see docs/architecture.md for the survey): the
maintained Python clients either no longer import with current protobuf
(python-etcd3), or lack TLS and the learner calls (aetcd); etcd 3.4 serves every call
vxswarm needs as JSON over HTTP (`/v3/kv/*`, `/v3/lease/*`, `/v3/watch`,
`/v3/cluster/member/*`, `/v3/maintenance/*`), and the standard library speaks HTTP
over a unix socket. The socket lives in the node's 0700 state directory: only root on
that node reaches the store, and no port is opened for it.

Synchronous on purpose: the store is called under the manager's lock from its threads.
One keep-alive connection per thread; a watch takes a connection of its own.

Keys and values are bytes (base64 on the wire); int64s come back as strings and fields
equal to their default are left out, as protobuf's JSON mapping does.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netagent.contract.errors import Unavailable

#: Longest one call waits (a write without quorum hangs in etcd until then).
TIMEOUT = 3.0
#: A change of membership may wait for a raft election among the remaining members.
MEMBERSHIP_TIMEOUT = 10.0


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def prefix_end(prefix: bytes) -> bytes:
    """The range end that makes a range of every key starting with `prefix`."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


@dataclass(frozen=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int = 0

    @classmethod
    def from_json(cls, kv: dict[str, Any]) -> KeyValue:
        return cls(
            key=unb64(kv.get("key")),
            value=unb64(kv.get("value")),
            create_revision=int(kv.get("create_revision", 0)),
            mod_revision=int(kv.get("mod_revision", 0)),
            lease=int(kv.get("lease", 0)),
        )


@dataclass(frozen=True)
class Event:
    """One change seen by a watch: a put (`kv` the new value) or a delete. `prev`: the
    value before it, on a watch made with `prev_kv` (None without, for a new key, or
    when that revision was compacted away)."""

    deleted: bool
    kv: KeyValue
    prev: KeyValue | None = None


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    peer_urls: tuple[str, ...]
    is_learner: bool = False

    @classmethod
    def from_json(cls, m: dict[str, Any]) -> Member:
        return cls(
            id=int(m["ID"]),
            name=m.get("name", ""),
            peer_urls=tuple(m.get("peerURLs", ())),
            is_learner=bool(m.get("isLearner", False)),
        )


@dataclass(frozen=True)
class Status:
    member_id: int
    leader: int
    raft_term: int
    raft_index: int
    raft_applied_index: int
    db_size: int
    is_learner: bool = False
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class TxnResult:
    succeeded: bool
    revision: int
    #: The ranges asked for in the branch that ran, in order (puts and deletes give []).
    ranges: list[list[KeyValue]] = field(default_factory=list)


# Request builders for txn(): compares and operations, as the gateway spells them.


def key_created_at(key: bytes, revision: int) -> dict[str, Any]:
    """Compare: the key exists and was created at `revision` (0: the key is absent)."""
    return {
        "key": b64(key),
        "target": "CREATE",
        "result": "EQUAL",
        "create_revision": str(revision),
    }


def op_put(key: bytes, value: bytes, lease: int = 0) -> dict[str, Any]:
    put: dict[str, Any] = {"key": b64(key), "value": b64(value)}
    if lease:
        put["lease"] = str(lease)
    return {"request_put": put}


def op_delete(key: bytes, range_end: bytes | None = None) -> dict[str, Any]:
    req = {"key": b64(key)}
    if range_end is not None:
        req["range_end"] = b64(range_end)
    return {"request_delete_range": req}


def op_range(key: bytes) -> dict[str, Any]:
    return {"request_range": {"key": b64(key)}}


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class EtcdError(Unavailable):
    """etcd refused a call or could not be reached; the message says which."""


class Compacted(EtcdError):
    """A watch asked for revisions etcd no longer keeps: `revision` is its oldest."""

    def __init__(self, message: str, revision: int):
        super().__init__(message)
        self.revision = revision


class EtcdClient:
    """Calls to one etcd member through its unix socket. Thread-safe."""

    def __init__(self, socket_path: Path | str, *, timeout: float = TIMEOUT):
        self.socket_path = str(socket_path)
        self.timeout = timeout
        self._local = threading.local()

    # plumbing ---------------------------------------------------------------------

    def _conn(self) -> _UnixHTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _UnixHTTPConnection(self.socket_path, self.timeout)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def call(
        self, path: str, body: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        """POST `body` to `path`; the answer, or EtcdError naming the member and why.
        `timeout`: this call's, if longer than the client's (membership changes)."""
        data = json.dumps(body)
        # A keep-alive connection the member closed (restarted) fails on first use:
        # one more try on a fresh one, never more (a write is not repeated blindly,
        # since the first try never reached etcd when the connection was dead).
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.timeout = timeout or self.timeout
                if conn.sock is not None:
                    conn.sock.settimeout(conn.timeout)
                conn.request("POST", path, data, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                raw = resp.read()
            except (ConnectionError, http.client.RemoteDisconnected) as err:
                self._drop()
                if attempt == 2:
                    raise self._unreachable(err) from None
                continue
            except (OSError, http.client.HTTPException) as err:
                self._drop()
                raise self._unreachable(err) from None
            break
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            raise EtcdError(f"etcd answered {path} with non-JSON: {raw[:80]!r}") from None
        if resp.status != 200 or "error" in answer and "header" not in answer:
            message = answer.get("message") or answer.get("error") or raw[:200].decode("replace")
            raise EtcdError(f"etcd refused {path}: {message}", op=path)
        return answer

    def _unreachable(self, err: Exception) -> EtcdError:
        if isinstance(err, TimeoutError | socket.timeout):
            why = f"no answer within {self.timeout:g} s"
        else:
            why = str(err) or type(err).__name__
        return EtcdError(f"etcd member at {self.socket_path} unreachable: {why}")

    def close(self) -> None:
        self._drop()

    # keys -------------------------------------------------------------------------

    def range(
        self,
        key: bytes,
        range_end: bytes | None = None,
        *,
        serializable: bool = False,
        keys_only: bool = False,
    ) -> tuple[list[KeyValue], int]:
        """(the keys in [key, range_end), the store's revision). `serializable`: the
        member's own copy, answered without quorum (may be stale)."""
        body: dict[str, Any] = {"key": b64(key)}
        if range_end is not None:
            body["range_end"] = b64(range_end)
        if serializable:
            body["serializable"] = True
        if keys_only:
            body["keys_only"] = True
        got = self.call("/v3/kv/range", body)
        kvs = [KeyValue.from_json(kv) for kv in got.get("kvs", [])]
        return kvs, int(got["header"].get("revision", 0))

    def get(self, key: bytes) -> KeyValue | None:
        kvs, _ = self.range(key)
        return kvs[0] if kvs else None

    def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        """Store `value` at `key`; the revision it was written at."""
        body = op_put(key, value, lease)["request_put"]
        return int(self.call("/v3/kv/put", body)["header"]["revision"])

    def delete(self, key: bytes, range_end: bytes | None = None) -> int:
        """Delete `key` (or the range); how many keys went."""
        body = op_delete(key, range_end)["request_delete_range"]
        return int(self.call("/v3/kv/deleterange", body).get("deleted", 0))

    def txn(
        self,
        compare: list[dict[str, Any]],
        success: list[dict[str, Any]],
        failure: list[dict[str, Any]] | None = None,
    ) -> TxnResult:
        """If every compare holds, run `success`, else `failure`: atomically."""
        body: dict[str, Any] = {"compare": compare, "success": success}
        if failure:
            body["failure"] = failure
        got = self.call("/v3/kv/txn", body)
        ranges = [
            [KeyValue.from_json(kv) for kv in r["response_range"].get("kvs", [])]
            for r in got.get("responses", [])
            if "response_range" in r
        ]
        return TxnResult(
            succeeded=bool(got.get("succeeded", False)),
            revision=int(got["header"].get("revision", 0)),
            ranges=ranges,
        )

    # leases -----------------------------------------------------------------------

    def lease_grant(self, ttl: int) -> int:
        """A new lease of `ttl` seconds; its id."""
        return int(self.call("/v3/lease/grant", {"TTL": str(ttl)})["ID"])

    def lease_keepalive(self, lease: int) -> int:
        """Renew `lease`; the seconds it now has left (0: it had already expired)."""
        got = self.call("/v3/lease/keepalive", {"ID": str(lease)})
        return int(got.get("result", got).get("TTL", 0))

    def lease_revoke(self, lease: int) -> None:
        """End `lease` now: every key attached to it is deleted."""
        self.call("/v3/lease/revoke", {"ID": str(lease)})

    # the cluster of members -------------------------------------------------------

    def members(self) -> list[Member]:
        got = self.call("/v3/cluster/member/list", {})
        return [Member.from_json(m) for m in got.get("members", [])]

    def member_add(self, peer_url: str, *, learner: bool) -> tuple[Member, list[Member]]:
        """Add a member (a learner: it catches up without a vote); (it, all members)."""
        got = self.call(
            "/v3/cluster/member/add",
            {"peerURLs": [peer_url], "isLearner": learner},
            timeout=MEMBERSHIP_TIMEOUT,
        )
        return Member.from_json(got["member"]), [Member.from_json(m) for m in got["members"]]

    def member_promote(self, member_id: int) -> None:
        """A learner becomes a voting member (etcd refuses until it has caught up)."""
        self.call("/v3/cluster/member/promote", {"ID": str(member_id)}, timeout=MEMBERSHIP_TIMEOUT)

    def member_remove(self, member_id: int) -> None:
        self.call("/v3/cluster/member/remove", {"ID": str(member_id)}, timeout=MEMBERSHIP_TIMEOUT)

    def status(self) -> Status:
        got = self.call("/v3/maintenance/status", {})
        return Status(
            member_id=int(got["header"]["member_id"]),
            leader=int(got.get("leader", 0)),
            raft_term=int(got.get("raftTerm", 0)),
            raft_index=int(got.get("raftIndex", 0)),
            raft_applied_index=int(got.get("raftAppliedIndex", 0)),
            db_size=int(got.get("dbSize", 0)),
            is_learner=bool(got.get("isLearner", False)),
            errors=tuple(got.get("errors", ())),
        )

    def move_leader(self, target: int) -> None:
        """Hand raft leadership to member `target` (called on the current leader)."""
        self.call("/v3/maintenance/transfer-leadership", {"targetID": str(target)})

    # watch ------------------------------------------------------------------------

    def watch(
        self, key: bytes, range_end: bytes | None, start_revision: int, *, prev_kv: bool = False
    ) -> Watch:
        """Every change in the range from `start_revision` on; see `Watch`. `prev_kv`:
        each event carries the value it replaced."""
        create: dict[str, Any] = {"key": b64(key), "start_revision": str(start_revision)}
        if range_end is not None:
            create["range_end"] = b64(range_end)
        if prev_kv:
            create["prev_kv"] = True
        # No timeout: a quiet range sends nothing for hours; `Watch.close` ends it.
        conn = _UnixHTTPConnection(self.socket_path, None)
        try:
            conn.request("POST", "/v3/watch", json.dumps({"create_request": create}))
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as err:
            conn.close()
            raise self._unreachable(err) from None
        if resp.status != 200:
            conn.close()
            raise EtcdError(f"etcd refused a watch: HTTP {resp.status}")
        return Watch(conn, resp)


class Watch:
    """A watch stream: iterate for (revision, events) until `close()` (from any
    thread) or until the member goes away (EtcdError)."""

    def __init__(self, conn: _UnixHTTPConnection, resp: http.client.HTTPResponse):
        self._conn = conn
        self._resp = resp
        self._closed = False

    def close(self) -> None:
        self._closed = True
        sock = self._conn.sock
        if sock is not None:
            # Wakes the reader blocked in readline(); it then sees `_closed`.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __iter__(self) -> Iterator[tuple[int, list[Event]]]:
        try:
            while True:
                try:
                    line = self._resp.readline()
                except (OSError, ValueError, http.client.HTTPException) as err:
                    if self._closed:
                        return
                    raise EtcdError(f"etcd watch broken: {err}") from None
                if self._closed:
                    return
                if not line:
                    raise EtcdError("etcd ended a watch (member stopped?)")
                result = json.loads(line).get("result", {})
                compacted = int(result.get("compact_revision", 0))
                if compacted:
                    raise Compacted(
                        f"etcd no longer keeps the revisions asked for: the oldest is {compacted}",
                        compacted,
                    )
                if result.get("canceled"):
                    reason = result.get("cancel_reason") or "canceled"
                    raise EtcdError(f"etcd canceled a watch: {reason}")
                events = [
                    Event(
                        deleted=e.get("type") == "DELETE",
                        kv=KeyValue.from_json(e["kv"]),
                        prev=KeyValue.from_json(e["prev_kv"]) if "prev_kv" in e else None,
                    )
                    for e in result.get("events", [])
                ]
                yield int(result.get("header", {}).get("revision", 0)), events
        finally:
            self._conn.close()
