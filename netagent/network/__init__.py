"""What the data plane builds from kernel primitives: overlay sandboxes (bridge + VXLAN),
the gateway bridge, a task's namespace and interfaces, and the checks run before any of it.
"""
