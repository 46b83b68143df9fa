"""The cluster's objects and their store: models, the SQLite store, the
allocator (VNIs, subnets, addresses), VIPs and published ports, the placement grammar the
specs are validated with (placement_text), the debug directory view.
"""
