"""vxswarm's embedded DNS resolver (Docker's 127.0.0.11), for the data plane to wire in.

    resolver = Resolver(upstreams=[...node's resolv.conf nameservers...])
    resolver.start()
    resolver.update(desired.networks)            # on every apply
    write_resolv_conf(task_ns)                   # before the task process is spawned
    resolver.attach(task.id, task_ns, [a.network_id for a in task.attachments])
    ...
    resolver.detach(task.id); remove_resolv_conf(task_ns)
    resolver.close()

The data plane uses it through `NodeDns` (node_resolver.py), which adds the node's
upstream servers. Modules: resolver.py (sockets and the serving thread), records.py
(answer tables, pure), wire.py (query parsing and answers, pure), hot.py (replayed
answers), tcp.py (DNS over TCP), upstream.py (forwarding), resolvconf.py (the task's
resolv.conf), node_resolver.py.
"""

from netagent.dns.records import NetworkRecords, Tables, network_records, reverse_name
from netagent.dns.resolvconf import remove_resolv_conf, resolv_conf_path, write_resolv_conf
from netagent.dns.resolver import RESOLVER_IP, Resolver

__all__ = [
    "RESOLVER_IP",
    "NetworkRecords",
    "Resolver",
    "Tables",
    "network_records",
    "remove_resolv_conf",
    "resolv_conf_path",
    "reverse_name",
    "write_resolv_conf",
]
