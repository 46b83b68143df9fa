"""vxswarm control plane: cluster objects, store, allocator, scheduler, reconcilers,
dispatcher, API and CLI. Knows no netlink; talks to the data plane only through
`netagent.contract.desired`."""

ENGINE_VERSION = "0.1.0"
