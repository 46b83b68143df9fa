"""Task processes: spawning the shim (PID 1 of a task), readiness, entering a task
(`exec`), lifecycle and status, and the built-in workloads an IMAGE names.
"""
