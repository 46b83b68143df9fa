"""`vxswarm capture`: packets seen from inside the cluster, with the cluster's names on them.

Design: the node whose kernel carries the packets does the capturing (its daemon
opens packet sockets in the wanted namespaces) and streams raw frames back; the
client decodes and names them with the manager's view. So a capture works the same
against a remote node, and `-w` files hold exactly the bytes on the wire.
  sniffer.py    packet sockets in namespaces, BPF filters, the read loop (kernel)
  points.py     "the sandbox of VNI 4097" -> namespace + interface on this node
  filters.py    BPF expressions for VNIs and trace probes (pure)
  packets.py    frame bytes -> Packet (pure, scapy)
  directory.py  the manager's view: who owns which address (pure)
  describe.py   Packet -> one readable line with names (pure)
  pcap.py       writing frames as a pcap file tshark decodes
"""
