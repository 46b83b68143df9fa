"""What the data plane remembers: the kernel objects and processes it made (inventory,
JSON under the state dir), what an apply changed (changes), the work derived per item (memo).
"""
