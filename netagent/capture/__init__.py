"""The node side of `vxswarm capture` and `vxswarm trace`: taps, probes, kernel facts.

Design: the node whose kernel carries the packets does the capturing (its daemon
opens packet sockets in the wanted namespaces) and streams raw frames back; the
client (orchestrator.cli.packets, orchestrator.cli.trace) decodes and names them with
the manager's view. So a capture works the same against a remote node, and `-w` files
hold exactly the bytes on the wire.
  sniffer.py  packet sockets in namespaces, BPF filters, the read loop (kernel)
  points.py   "the sandbox of VNI 4097" -> namespace + interface on this node
  stream.py   captured frames as a JSON-lines stream, and reading it back
  probe.py    a trace's probe (scapy, raw socket in the sender's namespace), its DNS question
  facts.py    links, neighbours, FDB, nft table and conntrack of a namespace (read-only)
"""
