"""Placement: which node runs a task. The scheduler (pure filters with explain strings),
constraints, spread preferences, and global-mode eligibility.
"""
