"""Drift: what a node's kernel and processes hold that its desired state does not say.

Someone deletes an FDB entry, a neighbour, an nft map element or a task's veth behind
the agent's back, or a task's process dies unseen: the data plane, which writes only
differences against what it remembers writing, would not notice. This package finds
such drift and repairs it, for `vxswarm verify [--fix]` and for the daemon's own
periodic self-check. One job per module:
  model.py    Difference (kind, object, problem, fix) and the API's wire models
  expect.py   what the kernel should hold, from the desired state and the records (pure)
  observe.py  what it holds: netlink dumps, nft listings, /proc, DNS answers (read-only)
  rtnl.py     lean rtnetlink dumps (struct-decoded: a check must cost milliseconds)
  diff.py     the comparison, worded for a user (pure)
  repair.py   one fix per kind, through the data plane
  check.py    a whole check (under the data plane's lock) and the agent's verify
  watch.py    the self-check thread (VXSWARM_SELF_CHECK seconds, default 3, 0 = off)

Design history: the first idea was netlink event listeners (RTM_DELNEIGH ...) in every
sandbox. A periodic full comparison was chosen instead: it also covers nft tables,
processes and DNS, shares all its code with `verify`, and costs milliseconds per pass
(bench/drift.py: ~13 ms CPU with 10 tasks, 20 VIPs, 200 peers; ~70 ms with 40 tasks,
100 VIPs, 2,000 peers, i.e. 0.4-2.3 % of one core at the default 3 s).
"""

from netagent.drift.model import Difference, Fix, Kind, NodeReport, VerifyRequest

__all__ = ["Difference", "Fix", "Kind", "NodeReport", "VerifyRequest"]
