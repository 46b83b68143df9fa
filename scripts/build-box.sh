#!/usr/bin/env bash
# Build the Debian 12 box of the Vagrant lab, offline: from this machine's configured apt
# source (and PyPI for the node's venv), no download of a ready-made box.
#
#   bash scripts/build-box.sh [--out DIR] [--force]
#
# Makes, in DIR (default $VXSWARM_BOX_DIR or /var/cache/vxswarm/box):
#   bookworm64.qcow2           the disk: what `vxswarm lab vms up` boots (copy-on-write)
#   vxswarm-bookworm64.box     the same disk as a Vagrant libvirt box, for a laptop:
#                              vagrant box add --name vxswarm/bookworm64 DIR/vxswarm-bookworm64.box
#   inputs.sha256              what the box was made from
# and nothing else outside DIR: the build runs debootstrap into a temporary folder in DIR,
# and its mounts (proc, dev) live in a mount namespace of their own, gone when it ends.
#
# The box is the node of the Vagrantfile, already installed: Debian 12 with its stock
# kernel, systemd, sshd, ifupdown; the user `vagrant` (passwordless sudo, Vagrant's
# insecure public key, which `vagrant up` and `vxswarm lab vms` replace at first boot);
# and vxswarm's node runtime exactly as vagrant/provision.sh's install step makes it
# (`scripts/bootstrap.sh node`: the apt packages, the venv /opt/vxswarm/venv, the CLI at
# /usr/local/bin/vxswarm, an editable install of the checkout at /vagrant). Provisioning a
# VM of it therefore downloads nothing, where a stock box takes ~5 minutes per VM.
#
# Cached: the box is rebuilt only when its inputs change (this script, vagrant/box/,
# scripts/bootstrap.sh, the dependencies in pyproject.toml and requirements.lock as
# scripts/deps_digest.py sees them, the apt source), or with
# --force. Prints one "build-box: ..." line per step on stderr; the paths on stdout.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUITE=bookworm
NAME=bookworm64
ROOT_SIZE_MB=6144 # the root filesystem: the system (~1.1 GB) + room for tasks, logs, etcd
BOOT_SIZE_MB=128  # the FAT partition syslinux boots the kernel and initrd from
#: What a node needs beyond `bootstrap.sh node`: a kernel and init, sshd and sudo for
#: Vagrant, ifupdown for its private_network, rsync for its synced folder, iperf3 for bench/.
BASE_PACKAGES=(linux-image-amd64 systemd-sysv udev kmod dbus ifupdown isc-dhcp-client
  openssh-server sudo rsync ca-certificates iperf3 netbase)

say() { echo "build-box: $*" >&2; }
die() {
  say "$*"
  exit 1
}

OUT="${VXSWARM_BOX_DIR:-/var/cache/vxswarm/box}"
FORCE=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    --out)
      [ "$#" -ge 2 ] || {
        say "option --out needs a value: expected a directory"
        exit 2
      }
      OUT="$2"
      shift 2
      ;;
    --force)
      FORCE=1
      shift
      ;;
    *)
      say "unknown argument '$1': expected --out DIR or --force"
      exit 2
      ;;
  esac
done
[[ "$OUT" == /* ]] || OUT="$PWD/$OUT"
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot): try sudo bash scripts/build-box.sh"
for tool in debootstrap mkfs.ext4 mkfs.vfat mcopy syslinux sfdisk qemu-img; do
  command -v "$tool" >/dev/null ||
    die "$tool not found: expected the VM lab's packages (bash scripts/bootstrap.sh vms installs them)"
done
MBR=/usr/lib/syslinux/mbr/mbr.bin
[ -r "$MBR" ] || die "$MBR not found: expected the syslinux-common package"

# The apt source: this machine's own, so a box builds wherever apt works.
mirror() {
  local uri=""
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    uri="$(awk '/^URIs:/ && !/security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)"
  fi
  if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
    uri="$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)"
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR="$(mirror)"
SECURITY="${MIRROR%/debian}/debian-security"

inputs_sha() {
  {
    cat "$REPO/scripts/build-box.sh" "$REPO/scripts/bootstrap.sh"
    python3 "$REPO/scripts/deps_digest.py" "$REPO/pyproject.toml" "$REPO/requirements.lock"
    (cd "$REPO/vagrant/box" && for f in *; do printf '%s\n' "$f" && cat "$f"; done)
    echo "$MIRROR $SUITE"
  } | sha256sum | cut -d' ' -f1
}
WANT="$(inputs_sha)"
DISK="$OUT/$NAME.qcow2"
BOX="$OUT/vxswarm-$NAME.box"
if [ "$FORCE" = 0 ] && [ -f "$DISK" ] && [ -f "$BOX" ] && [ "$(cat "$OUT/inputs.sha256" 2>/dev/null)" = "$WANT" ]; then
  say "the box is up to date ($OUT)"
  printf '%s\n%s\n' "$DISK" "$BOX"
  exit 0
fi

mkdir -p "$OUT"
chmod 0755 "$OUT"
WORK="$(mktemp -d "$OUT/.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
ROOTFS="$WORK/rootfs"
START=$SECONDS

say "debootstrap $SUITE from $MIRROR"
debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
  die "debootstrap failed: $(tail -n 3 "$WORK/debootstrap.log" | tr '\n' ' ')"

cat >"$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY $SUITE-security main
EOF
# No service starts inside the chroot (etcd-server's, sshd's).
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
chmod 0755 "$ROOTFS/usr/sbin/policy-rc.d"
# HTTPS from the chroot (pip) trusts what this machine trusts: a proxy's CA included.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
fi
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
# The checkout, as the Vagrantfile's rsync folder puts it: provision.sh's install step runs
# `bootstrap.sh node` from it, and the venv's editable install points at it.
mkdir -p "$ROOTFS/vagrant"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) | tar -C "$ROOTFS/vagrant" -xf -
VAGRANT_KEYS="$(find /usr/share/rubygems-integration /opt/vagrant -path '*/keys/vagrant.pub*' 2>/dev/null | head -n 1 || true)"

say "installing the node: ${BASE_PACKAGES[*]}, then scripts/bootstrap.sh node"
# A private mount namespace: proc/dev/sys mounted for the chroot vanish with it. The
# script is single-quoted on purpose: it expands its own arguments.
# shellcheck disable=SC2016
unshare --mount --propagation private -- bash -euo pipefail -c '
  root="$1"; shift
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --rbind /dev "$root/dev"
  # A clean environment: nothing of this shell (pip settings, paths) leaks into the box.
  in_box() { env -i DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 HOME=/root \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin chroot "$root" "$@"; }
  in_box apt-get update -qq
  in_box apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  in_box update-ca-certificates >/dev/null
  in_box env PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    VXSWARM_VENV=/opt/vxswarm/venv VXSWARM_BIN_LINK=/usr/local/bin/vxswarm \
    bash /vagrant/scripts/bootstrap.sh node
' build-box "$ROOTFS" "${BASE_PACKAGES[@]}" >"$WORK/chroot.log" 2>&1 ||
  die "installing into the chroot failed: $(tail -n 5 "$WORK/chroot.log" | tr '\n' ' ')"

say "configuring the box"
install -m 0755 "$REPO/vagrant/box/vxswarm-seed" "$ROOTFS/usr/local/sbin/vxswarm-seed"
install -m 0644 "$REPO/vagrant/box/vxswarm-seed.service" "$ROOTFS/etc/systemd/system/vxswarm-seed.service"
install -m 0644 "$REPO/vagrant/box/interfaces" "$ROOTFS/etc/network/interfaces"
install -m 0644 "$REPO/vagrant/box/vxswarm-hostkeys.conf" "$ROOTFS/etc/ssh/sshd_config.d/vxswarm-hostkeys.conf"
mkdir -p "$ROOTFS/etc/network/interfaces.d"
chroot "$ROOTFS" systemctl enable --quiet vxswarm-seed.service
# etcd-server's own unit: vxswarm's daemon runs its member itself (as bootstrap.sh says).
chroot "$ROOTFS" systemctl disable --quiet etcd.service 2>/dev/null || true
# Timers that would compete for the emulated CPU in the first minutes of a lab.
chroot "$ROOTFS" systemctl mask --quiet apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
  e2scrub_reap.service fstrim.timer man-db.timer 2>/dev/null || true
chroot "$ROOTFS" useradd --create-home --shell /bin/bash --user-group vagrant
chroot "$ROOTFS" passwd --lock vagrant >/dev/null
printf 'vagrant ALL=(ALL) NOPASSWD: ALL\n' >"$ROOTFS/etc/sudoers.d/vagrant"
chmod 0440 "$ROOTFS/etc/sudoers.d/vagrant"
install -d -m 0700 "$ROOTFS/home/vagrant/.ssh"
if [ -n "$VAGRANT_KEYS" ]; then
  cp "$VAGRANT_KEYS" "$ROOTFS/home/vagrant/.ssh/authorized_keys"
else
  say "no Vagrant insecure key on this machine (package vagrant): the box works for vxswarm lab vms, not for vagrant up"
  : >"$ROOTFS/home/vagrant/.ssh/authorized_keys"
fi
chmod 0600 "$ROOTFS/home/vagrant/.ssh/authorized_keys"
chroot "$ROOTFS" chown -R vagrant:vagrant /home/vagrant/.ssh
echo "LABEL=vxroot / ext4 errors=remount-ro 0 1" >"$ROOTFS/etc/fstab"
echo "$NAME" >"$ROOTFS/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$NAME" >"$ROOTFS/etc/hosts"
printf 'nameserver 10.0.2.3\n' >"$ROOTFS/etc/resolv.conf" # qemu's and VirtualBox's NAT resolver
# What must differ between VMs is made at boot: the machine id (an empty file makes
# systemd write a new one, so no two VMs ask DHCP for the same lease) and the host keys.
: >"$ROOTFS/etc/machine-id"
rm -f "$ROOTFS/var/lib/dbus/machine-id" "$ROOTFS"/etc/ssh/ssh_host_*
rm -f "$ROOTFS/usr/sbin/policy-rc.d"
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/tmp/* "$ROOTFS"/root/.cache

say "making the disk (FAT boot partition with syslinux, ext4 root) without mounting it"
BOOT_IMG="$WORK/boot.img" RAW="$WORK/disk.raw"
KERNEL="$(find "$ROOTFS/boot" -name 'vmlinuz-*' | sort -V | tail -n 1)"
INITRD="$(find "$ROOTFS/boot" -name 'initrd.img-*' | sort -V | tail -n 1)"
{ [ -n "$KERNEL" ] && [ -n "$INITRD" ]; } || die "no kernel or initrd in the image: expected /boot/vmlinuz-* and /boot/initrd.img-*"
boot_start=2048 # sectors: the first partition at 1 MiB
root_start=$((boot_start + BOOT_SIZE_MB * 2048))
# -h: the partition's offset (hidden sectors), which syslinux's boot sector adds to find
# ldlinux.sys on the disk.
mkfs.vfat -C -h $boot_start -n VXBOOT "$BOOT_IMG" $((BOOT_SIZE_MB * 1024)) >/dev/null
mcopy -i "$BOOT_IMG" "$KERNEL" ::/vmlinuz
mcopy -i "$BOOT_IMG" "$INITRD" ::/initrd.img
mcopy -i "$BOOT_IMG" "$REPO/vagrant/box/syslinux.cfg" ::/syslinux.cfg
syslinux --install "$BOOT_IMG"
truncate -s $(((root_start / 2048 + ROOT_SIZE_MB) * 1024 * 1024)) "$RAW"
sfdisk --quiet "$RAW" <<EOF
label: dos
start=$boot_start, size=$((BOOT_SIZE_MB * 2048)), type=c, bootable
start=$root_start, type=83
EOF
dd if="$MBR" of="$RAW" bs=440 count=1 conv=notrunc status=none
dd if="$BOOT_IMG" of="$RAW" bs=1M seek=1 conv=notrunc,sparse status=none
mkfs.ext4 -q -F -L vxroot -d "$ROOTFS" -E offset=$((root_start * 512)) "$RAW" "${ROOT_SIZE_MB}M"
qemu-img convert -O qcow2 "$RAW" "$WORK/$NAME.qcow2"

say "packing the Vagrant libvirt box"
virtual_gb=$(((root_start / 2048 + ROOT_SIZE_MB + 1023) / 1024))
printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %s}\n' "$virtual_gb" >"$WORK/metadata.json"
cp "$REPO/vagrant/box/Vagrantfile" "$WORK/Vagrantfile"
ln "$WORK/$NAME.qcow2" "$WORK/box.img"
tar -C "$WORK" -cf "$WORK/box.tar" metadata.json Vagrantfile box.img

mv -f "$WORK/$NAME.qcow2" "$DISK"
mv -f "$WORK/box.tar" "$BOX"
echo "$WANT" >"$OUT/inputs.sha256"
say "built in $((SECONDS - START)) s: $DISK ($(du -h "$DISK" | cut -f1)), $BOX"
printf '%s\n%s\n' "$DISK" "$BOX"
