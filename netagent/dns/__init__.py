"""vxswarm's embedded DNS resolver (Docker's 127.0.0.11), for the data plane to wire in.

    resolver = Resolver(upstreams=[...node's resolv.conf nameservers...])
    resolver.start()
    resolver.update(desired.networks)            # on every apply
    write_resolv_conf(task_ns)                   # before the task process is spawned
    resolver.attach(task.id, task_ns, [a.network_id for a in task.attachments])
    ...
    resolver.detach(task.id); remove_resolv_conf(task_ns)
    resolver.close()

Modules: records.py (answer tables, pure), wire.py (query parsing and answers,
pure), upstream.py (forwarding), server.py (sockets and the serving thread),
resolvconf.py (the task's resolv.conf).
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
