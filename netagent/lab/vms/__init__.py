"""The VM lab: the Vagrantfile's VMs booted on this machine under QEMU (`vxswarm lab vms`)."""
