"""Object operations: creating, changing and removing services, networks and nodes,
validation first, then one write; the input checks and duration parsing they share.
"""
