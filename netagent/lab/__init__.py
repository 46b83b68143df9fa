"""The one-machine lab: a row of "VMs" made of network namespaces on one underlay switch.

topology (pure description and names) -> record (lab.json) -> underlay (namespaces,
links) -> nodes (daemon processes) -> lab (the verbs) -> cli (flags and printing).
"""
