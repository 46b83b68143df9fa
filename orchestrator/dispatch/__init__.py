"""The dispatcher: each node's desired state (kept per node, rebuilt when the store
changed), its service half, heartbeats and the liveness of nodes.
"""
