"""etcd for the managers: a client of its JSON gateway, its member process, elections.

Swarm keeps its cluster state in Raft across the managers; vxswarm does the same with
etcd, one member per manager (see docs/architecture.md, "The store"). This package knows
etcd and nothing of swarms: the store (orchestrator.cluster.store) and the node
(orchestrator.node) give it meaning.
"""
