"""The daemon's HTTP API (aiohttp): one app served on the local unix socket and on TCP 2377
(listeners.py). Routes: routes.py (swarm, nodes, networks, services, tasks, dispatcher),
debug_routes.py, verify_routes.py, metrics_routes.py, visualizer_routes.py (static/);
app.py (errors, validation, forwarding to the leader), directory_view.py.
"""
