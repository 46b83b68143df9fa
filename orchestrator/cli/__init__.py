"""`vxswarm ...`: the CLI, a thin client of a daemon's API. One module per docker command
(flags, calls, formatting), plus the client side of capture and trace (packets/, trace/).
"""

import sys

# httpx imports its own command-line client at import time whenever rich, pygments and
# click are installed (they are, beside the test tools): 4 MB of every daemon's memory
# and 40 ms of every command's start-up, for a program vxswarm never runs. Marking the
# module absent makes httpx skip it (its import is guarded for exactly that case).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
