"""Kernel primitives: named namespaces and netlink in them, idempotent link steps,
FDB/neighbour tables, iptables, the host's addresses, and the one naming scheme.
"""
