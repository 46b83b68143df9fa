"""The agent: one node's reconciler (`DataPlane`), its session with the manager, the
snapshot the drift checker reads (built), teardown from the records (wipe), metrics and
memory tuning. What it remembers lives in netagent.ledger.
"""
