"""Object operations: creating, changing and removing services, networks and nodes, and
who is in the swarm (membership: init, join, leave); validation first, then one write;
the input checks and duration parsing they share.
"""
