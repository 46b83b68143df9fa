"""Every Prometheus metric of one vxswarm daemon, in that daemon's own registry.

Owns no kernel object. One `Metrics` per daemon holds one `CollectorRegistry` (never
prometheus-client's global default registry), so several daemons or data planes in
one process, as in tests, never share or collide on a series.

Two kinds of metric, chosen by where the truth lives:
- events, counted or timed as they happen by the code that does them: data-plane
  applies, manager reconcile ticks, nft table loads, heartbeats sent and received,
  desired states received (whole or as patches),
  API requests, drift repairs (`repaired`, for the drift-repair work to call);
- state that other objects already keep, read only when scraped (`watch`): the
  tasks on this node (the data plane's statuses), the cluster's tasks and nodes
  (the manager's store, summarised by the caller into label tuples, since the data
  plane may not import the orchestrator) and the DNS resolver's counters. Reading
  them at scrape time costs the hot paths nothing and can never drift from them.

Label values that come from the network (DNS query types) are folded into a fixed
set, so a client cannot grow the series without bound.
"""

from __future__ import annotations

import re
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from dnslib import QTYPE, RCODE
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from netagent.contract.desired import TaskState, TaskStatus
from netagent.contract.errors import InvalidArgument

if TYPE_CHECKING:
    from netagent.dns.resolver import Resolver

__all__ = ["ClusterSummary", "Metrics", "dns_qtype", "dns_rcode"]

T = TypeVar("T")
R = TypeVar("R")

#: A repair kind becomes a label value: short, lower-case, stable (e.g. "fdb", "nft_table").
REPAIR_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")
#: Seconds; an apply builds namespaces and spawns processes, a tick and an nft load do not.
APPLY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Resolver counters that are errors rather than answers: label -> key of `Resolver.stats`.
DNS_ERROR_KINDS = {"malformed": "malformed", "handler": "errors", "tcp_refused": "tcp_refused"}


#: What a DNS type or code name looks like; dnslib gives unnamed numbers back as digits.
_DNS_NAME_RE = re.compile(r"^[A-Z][A-Z0-9-]*\Z")


def _named(name: object) -> str:
    return name if isinstance(name, str) and _DNS_NAME_RE.match(name) else "other"


def dns_qtype(qtype: int) -> str:
    """A query type's name ("A", "PTR"); "other" for numbers DNS has no name for."""
    return _named(QTYPE.get(qtype, None))


def dns_rcode(rcode: int) -> str:
    """A response code's name ("NOERROR", "NXDOMAIN"); "other" for unnamed ones."""
    return _named(RCODE.get(rcode, None))


@dataclass(frozen=True)
class ClusterSummary:
    """What a manager's store holds, counted by the labels the metrics use."""

    #: (service name, task state) -> tasks, every task the store keeps (history too).
    tasks: Mapping[tuple[str, str], int] = field(default_factory=dict)
    #: (role, status, availability) -> nodes.
    nodes: Mapping[tuple[str, str, str], int] = field(default_factory=dict)


@dataclass(frozen=True)
class LoopStalls:
    """How late the daemon's event loop wakes (orchestrator.dispatch.stalls)."""

    lag: float
    total: float
    longest: float


@dataclass
class _Sources:
    """Callables the scrape reads; each returns None (or nothing) when not there now."""

    node_tasks: Callable[[], Iterable[TaskStatus]] | None = None
    cluster: Callable[[], ClusterSummary | None] | None = None
    dns: Callable[[], Resolver | None] | None = None
    loop: Callable[[], LoopStalls] | None = None
    #: Seconds since the agent's session last knew its applied state current.
    state_age: Callable[[], float | None] | None = None


class _StateCollector:
    """Turns the watched objects' current state into metric families at scrape time."""

    def __init__(self, sources: _Sources) -> None:
        self._sources = sources

    def describe(self) -> list[Metric]:
        # Nothing to check for collisions: the names below are this module's alone.
        return []

    def collect(self) -> Iterator[Metric]:
        src = self._sources
        if src.node_tasks is not None:
            yield self._node_tasks(src.node_tasks())
        summary = src.cluster() if src.cluster is not None else None
        if summary is not None:
            yield from self._cluster(summary)
        resolver = src.dns() if src.dns is not None else None
        if resolver is not None:
            yield from self._dns(resolver.stats, resolver.answered)
        if src.loop is not None:
            yield from self._loop(src.loop())
        age = src.state_age() if src.state_age is not None else None
        if age is not None:
            yield GaugeMetricFamily(
                "vxswarm_session_state_age_seconds",
                "Seconds since the agent last knew its applied desired state to be the "
                "current one (a poll answered, a state applied): a watchdog, it grows when "
                "the session stops applying.",
                value=age,
            )

    @staticmethod
    def _loop(stalls: LoopStalls) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "vxswarm_loop_lag_seconds",
            "How late the daemon's event loop last woke from a 0.1 s sleep.",
            value=stalls.lag,
        )
        yield CounterMetricFamily(
            "vxswarm_loop_stalled_seconds",
            "Seconds the event loop was stalled (woke more than 50 ms late); a manager "
            "takes them out of its nodes' silence.",
            value=stalls.total,
        )
        yield GaugeMetricFamily(
            "vxswarm_loop_longest_stall_seconds",
            "The longest single stall of the event loop since the daemon started.",
            value=stalls.longest,
        )

    @staticmethod
    def _node_tasks(statuses: Iterable[TaskStatus]) -> Metric:
        by_state = Tally(str(s.state) for s in statuses)
        g = GaugeMetricFamily(
            "vxswarm_tasks", "Tasks this node's data plane knows, by state.", labels=["state"]
        )
        for state in TaskState:  # every state, zeros too: a rate needs the series to exist
            g.add_metric([str(state)], by_state.get(str(state), 0))
        return g

    @staticmethod
    def _cluster(summary: ClusterSummary) -> Iterator[Metric]:
        tasks = GaugeMetricFamily(
            "vxswarm_cluster_tasks",
            "Tasks in the cluster store (this manager is the leader), by service and state.",
            labels=["service", "state"],
        )
        for (service, state), n in sorted(summary.tasks.items()):
            tasks.add_metric([service, state], n)
        yield tasks
        nodes = GaugeMetricFamily(
            "vxswarm_cluster_nodes",
            "Nodes of the cluster, by role, status and availability.",
            labels=["role", "status", "availability"],
        )
        for labels, n in sorted(summary.nodes.items()):
            nodes.add_metric(list(labels), n)
        yield nodes

    @staticmethod
    def _dns(stats: Mapping[str, int], answered: Mapping[tuple[int, int], int]) -> Iterator[Metric]:
        queries: Tally[str] = Tally()
        for key, n in stats.items():
            if key.startswith("qtype_"):
                queries[_named(key[len("qtype_") :])] += n
        q = CounterMetricFamily(
            "vxswarm_dns_queries",
            "Well-formed queries the embedded resolver received, by query type.",
            labels=["qtype"],
        )
        for name, n in sorted(queries.items()):
            q.add_metric([name], n)
        yield q
        folded: Tally[tuple[str, str]] = Tally()
        for (qtype, rcode), n in answered.items():
            folded[(dns_qtype(qtype), dns_rcode(rcode))] += n
        a = CounterMetricFamily(
            "vxswarm_dns_answers",
            "Responses the embedded resolver sent (its own and forwarded), by query type "
            "and response code.",
            labels=["qtype", "rcode"],
        )
        for labels, n in sorted(folded.items()):
            a.add_metric(list(labels), n)
        yield a
        yield CounterMetricFamily(
            "vxswarm_dns_forwarded",
            "Queries forwarded to the node's upstream DNS servers.",
            value=stats.get("forwarded", 0),
        )
        e = CounterMetricFamily(
            "vxswarm_dns_errors",
            "Queries dropped or failed inside the resolver, by kind (malformed packet, "
            "handler error, TCP connection refused at the cap).",
            labels=["kind"],
        )
        for kind, key in DNS_ERROR_KINDS.items():
            e.add_metric([kind], stats.get(key, 0))
        yield e
        yield GaugeMetricFamily(
            "vxswarm_dns_tasks", "Task namespaces the resolver serves.", value=stats.get("tasks", 0)
        )


class Metrics:
    """One daemon's metrics. Thread-safe: prometheus-client metrics lock themselves."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.apply_seconds = Histogram(
            "vxswarm_apply_seconds",
            "Time the agent took to apply one desired state to the kernel.",
            buckets=APPLY_BUCKETS,
            registry=r,
        )
        self.reconcile_seconds = Histogram(
            "vxswarm_reconcile_seconds",
            "Time one manager reconcile tick took (node health, services to tasks).",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.rule_sync_seconds = Histogram(
            "vxswarm_rule_sync_seconds",
            "Time one nft table load took (mode: changed chains only, or the whole table).",
            ["mode"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.heartbeats_sent = Counter(
            "vxswarm_heartbeats_sent",
            "Heartbeats this agent sent to its manager (result: ok, refused, unreachable).",
            ["result"],
            registry=r,
        )
        self.assignments_received = Counter(
            "vxswarm_assignments_received",
            "Desired states this agent received (form: whole, patch, or refused: a patch "
            "of a state it does not hold, so it asked for the whole state).",
            ["form"],
            registry=r,
        )
        self.session_errors = Counter(
            "vxswarm_session_errors",
            "Unexpected errors in the agent's session loops (loop: heartbeat, assignments); "
            "each is logged and the loop goes on after a pause.",
            ["loop"],
            registry=r,
        )
        self.heartbeats_received = Counter(
            "vxswarm_heartbeats_received",
            "Heartbeats this manager accepted from nodes.",
            registry=r,
        )
        self.repairs = Counter(
            "vxswarm_repairs",
            "Drift the agent found in the kernel and repaired, by kind of object.",
            ["kind"],
            registry=r,
        )
        self.api_requests = Counter(
            "vxswarm_api_requests",
            "Requests this daemon's API answered, by method, route and HTTP status.",
            ["method", "route", "code"],
            registry=r,
        )
        self._sources = _Sources()
        r.register(_StateCollector(self._sources))

    # -- events ---------------------------------------------------------------------

    def timed_apply(self, apply: Callable[[T], R]) -> Callable[[T], R]:
        """`apply`, observed into vxswarm_apply_seconds (failed applies too)."""

        def timed(desired: T) -> R:
            with self.apply_seconds.time():
                return apply(desired)

        return timed

    def rule_synced(self, seconds: float, mode: str) -> None:
        """One nft table load took `seconds` (mode "delta", "replace" or "delete")."""
        self.rule_sync_seconds.labels(mode=mode).observe(seconds)

    def heartbeat_sent(self, result: str) -> None:
        self.heartbeats_sent.labels(result=result).inc()

    def assignment_received(self, form: str) -> None:
        self.assignments_received.labels(form=form).inc()

    def session_error(self, loop: str) -> None:
        self.session_errors.labels(loop=loop).inc()

    def heartbeat_received(self) -> None:
        self.heartbeats_received.inc()

    def repaired(self, kind: str, count: int = 1) -> None:
        """Count `count` repairs of drift in objects of `kind` (e.g. "fdb", "nft_table")."""
        if not isinstance(kind, str) or not REPAIR_KIND_RE.match(kind):
            raise InvalidArgument(
                f"invalid repair kind {kind!r}: expected 1-32 lower-case letters, digits "
                "or '_', starting with a letter",
                obj=str(kind),
                op="count repair",
            )
        if not isinstance(count, int) or count < 1:
            raise InvalidArgument(
                f"invalid repair count {count!r}: expected a whole number of at least 1",
                obj=kind,
                op="count repair",
            )
        self.repairs.labels(kind=kind).inc(count)

    def api_request(self, method: str, route: str, code: int) -> None:
        self.api_requests.labels(method=method, route=route, code=str(code)).inc()

    # -- state read at scrape time ----------------------------------------------------

    def watch(
        self,
        *,
        node_tasks: Callable[[], Iterable[TaskStatus]] | None = None,
        cluster: Callable[[], ClusterSummary | None] | None = None,
        dns: Callable[[], Resolver | None] | None = None,
        loop: Callable[[], LoopStalls] | None = None,
        state_age: Callable[[], float | None] | None = None,
    ) -> None:
        """Read these at every scrape (a source given again replaces the old one)."""
        given = {
            "node_tasks": node_tasks,
            "cluster": cluster,
            "dns": dns,
            "loop": loop,
            "state_age": state_age,
        }
        for name, source in given.items():
            if source is not None:
                setattr(self._sources, name, source)

    # -- exposition -------------------------------------------------------------------

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """(body, content type) of a scrape, in the format the `Accept` header asks for."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type
