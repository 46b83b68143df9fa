"""The one-machine lab: a row of "VMs" made of network namespaces on one underlay switch.

topology (pure description and names) -> record (lab.json) -> underlay (namespaces,
links) -> nodes (daemon processes) -> verbs (up, down, stop, start, ...) ->
orchestrator.cli.lab (flags and printing). Also: demo (the tutorial, run), driver (a
lab handle for tests and benchmarks), loadgen (ApacheBench from the lab client).
"""
