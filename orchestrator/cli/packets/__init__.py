"""The client side of `vxswarm capture`: frames streamed by a node, decoded and named here.
filters.py   BPF expressions for VNIs and trace probes (pure)
decode.py    frame bytes -> Packet (pure, scapy)
describe.py  Packet -> one readable line with the cluster's names (pure)
pcap.py      writing frames as a pcap file tshark decodes
"""
