"""vxswarm data plane: makes one node's kernel match its desired state.

Knows no scheduling. The orchestrator hands it a `NodeDesiredState` and reads back
`TaskStatus` reports; both are in `netagent.contract`, the one package the control-plane
core may import. Everything else here is netlink, nftables, iptables, sockets and
processes. Packages, layers and flows: docs/architecture.md.
"""
