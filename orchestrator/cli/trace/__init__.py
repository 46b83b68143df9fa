"""`vxswarm trace`, client side: one real probe, watched at every hop, explained from the
kernel's state (the node side is netagent.capture).
plan.py      FROM / DEST resolved against the manager's view; where to capture (pure)
legs.py      captured frames -> the probe's legs at each point (pure)
hops.py      the expected path, hop by hop, judged against what was seen (pure)
diagnose.py  why a hop saw nothing: kernel facts compared with the desired state (pure)
runner.py    the I/O: captures on every node, the probe, the facts (through the API)
"""
