"""The contract: everything the control plane and the data plane exchange, and nothing else.
desired.py (one node's desired state, task statuses), patch.py (a state as a change to
the last one), messages.py (join, heartbeat, assignments), images.py (the built-in image
names), errors.py (the one error family). Imports nothing else of vxswarm (import-linter).
"""
