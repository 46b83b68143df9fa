"""`vxswarm trace`, the node side: send a probe from a namespace, ask a task's resolver,
read the kernel state a diagnosis compares with the desired state.
  probe.py  the probe (scapy, raw socket in the sender's namespace) and the DNS question
  facts.py  links, neighbours, FDB, nft table and conntrack of a namespace (read-only)
The trace itself (where to look, what was seen, what is missing) is orchestrator.trace.
"""
