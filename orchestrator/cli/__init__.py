"""`vxswarm ...`: the CLI, a thin client of a daemon's API. One module per docker command
(flags, calls, formatting), plus the client side of capture and trace (packets/, trace/).
"""
