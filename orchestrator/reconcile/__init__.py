"""Reconcilers: a service's tasks made to match its spec (replicated, global, restarts),
rolling updates, rollbacks and the restart policy.
"""
