"""The agent: one node's reconciler (`DataPlane`), its session with the manager, its
records on disk, the memo of per-item work, metrics and memory tuning.
"""
