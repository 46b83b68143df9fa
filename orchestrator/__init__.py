"""vxswarm control plane: cluster objects and store, placement, operations, reconcilers,
dispatcher, the manager, stacks; the node process (node/) and the CLI (cli/). The core
knows no netlink and imports only `netagent.contract` of the data plane; node/ and cli/
compose both sides. Packages, layers and flows: docs/architecture.md."""

ENGINE_VERSION = "0.1.0"
