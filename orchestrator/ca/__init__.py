"""The swarm's certificate authority, as swarmkit's `ca/`: join tokens, the root CA, node
certificates and their renewal, the TLS contexts, and who may call what (O, OU, CN checks).
"""
