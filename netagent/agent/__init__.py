"""The agent: one node's reconciler (`DataPlane`), its session with the manager, its
metrics and memory tuning. What it remembers lives in netagent.ledger.
"""
