"""The node process, the one place that composes the control plane and the data plane
(swarmkit's `node/`): the daemon, its HTTP API (api/) and the API client.
"""
