"""vxswarm data plane: makes one node's kernel match its desired state.

Knows no scheduling. The orchestrator hands it a `NodeDesiredState` (see
`netagent.contract.desired`) and reads back `TaskStatus` reports; everything else here
is netlink, iptables and processes.
"""
