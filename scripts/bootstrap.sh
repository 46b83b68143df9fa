#!/usr/bin/env bash
# Bring a fresh Debian 12 box (as root) to a working vxswarm, then run the demo or the tests.
#
#   bash scripts/bootstrap.sh demo      # install what is missing, run `vxswarm lab demo`
#   bash scripts/bootstrap.sh test      # install what is missing, lint, import rules + the whole test suite
#   bash scripts/bootstrap.sh install   # install what is missing, nothing more
#   bash scripts/bootstrap.sh node      # only what a node runs (no test/bench tools): Vagrant VMs
#   bash scripts/bootstrap.sh vms       # install what is missing + QEMU, boot three Debian VMs
#                                       # and run the tutorial across them (tests/vms, opt-in)
#
# Idempotent and quiet: each step first checks whether its result is already there
# (dpkg status, the venv's Python, a stamp of what pip installed, the symlink) and only
# then acts, printing one "bootstrap: ..." line per action on stderr.
#
# Overridable for CI or a second checkout: PYTHON (interpreter to build the venv with,
# default python3), VXSWARM_VENV (default <repo>/.venv), VXSWARM_BIN_LINK (default
# /usr/local/bin/vxswarm).
set -euo pipefail

# What a node runs (the daemon, tasks, `vxswarm exec`, capture)...
NODE_PACKAGES=(iproute2 iptables util-linux iputils-ping procps curl dnsutils nftables python3-venv
  etcd-server  # every manager runs one etcd member: the cluster store
  libpcap0.8)  # capture and trace compile BPF filters with libpcap
# ...and what the tests and benchmarks need on top.
DEV_PACKAGES=(apache2-utils tshark
  dnsperf dnsmasq-base iperf3  # these three: bench/ only
  chromium chromium-driver  # the visualizer test's headless browser
  vagrant  # tests/integration/test_vagrant.py: `vagrant validate` of the Vagrantfile
  shellcheck)  # ...and its check of the VM path's shell scripts
# ...and what the VM lab needs (`vxswarm lab vms`, scripts/build-box.sh, tests/vms).
VM_PACKAGES=(qemu-system-x86 qemu-utils  # the VMs, under software emulation
  debootstrap fdisk dosfstools mtools syslinux syslinux-common  # the box, built offline
  openssh-client rsync)  # provisioning, as Vagrant does it: SSH and the rsync synced folder

say() { echo "bootstrap: $*" >&2; }
die() { say "$*"; exit 1; }

# --- arguments first: nothing is touched for a bad invocation ------------------------------
mode="${1-}"
case "$mode" in
  demo | test | install | node | vms) ;;
  *)
    say "unknown mode '${mode}': expected demo, test, install, node or vms (usage: bash scripts/bootstrap.sh demo|test|install|node|vms)"
    exit 2
    ;;
esac
if [ "$#" -gt 1 ]; then
  say "unexpected argument '$2': expected only one of demo, test, install, node or vms"
  exit 2
fi
[ "$(id -u)" -eq 0 ] || die "must run as root (installs apt packages, builds network namespaces): try sudo bash scripts/bootstrap.sh $mode"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${VXSWARM_VENV:-$REPO/.venv}"
BIN_LINK="${VXSWARM_BIN_LINK:-/usr/local/bin/vxswarm}"
LOCK="$REPO/requirements.lock"
STAMP="$VENV/.vxswarm-bootstrap"

# --- apt: only the missing packages ---------------------------------------------------------
APT_PACKAGES=("${NODE_PACKAGES[@]}")
EXTRAS="[test]"
if [ "$mode" != node ]; then
  APT_PACKAGES+=("${DEV_PACKAGES[@]}")
  [ "$mode" != vms ] || APT_PACKAGES+=("${VM_PACKAGES[@]}")
else
  EXTRAS=""
fi
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null || die "apt-get not found: expected Debian 12; install by hand: ${missing[*]}"
  say "installing apt packages: ${missing[*]}"
  # tshark asks whether non-root users may capture; noninteractive takes the default (no).
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # etcd-server comes with a system service of its own: vxswarm's daemon runs its
  # member itself (on a unix socket), so the packaged one is stopped and disabled.
  if [[ " ${missing[*]} " == *" etcd-server "* ]] && [ -d /run/systemd/system ]; then
    systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
fi

# --- Python >= 3.11 and the venv ------------------------------------------------------------
is_py311() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

if ! is_py311 "$VENV/bin/python"; then
  command -v "$PYTHON" >/dev/null || die "python '$PYTHON' not found: expected Python >= 3.11 (Debian 12 ships 3.11)"
  is_py311 "$PYTHON" || die "python '$PYTHON' is $("$PYTHON" -V 2>&1): expected Python >= 3.11"
  say "creating virtualenv $VENV with $("$PYTHON" -V 2>&1)"
  # --clear: a venv left by another interpreter version is rebuilt, not patched.
  "$PYTHON" -m venv --clear "$VENV"
fi

# --- pip: pinned direct deps (pyproject) + pinned transitive deps (lock) ----------------------
# The stamp records what the last successful install was made from; a change of the
# interpreter, pyproject.toml's [project] or the lock file triggers a reinstall, nothing
# else does (scripts/deps_digest.py).
want_stamp="$("$VENV/bin/python" -V 2>&1) $EXTRAS $("$VENV/bin/python" "$REPO/scripts/deps_digest.py" "$REPO/pyproject.toml" "$LOCK")"
if [ ! -x "$VENV/bin/vxswarm" ] || [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want_stamp" ]; then
  say "installing vxswarm and its pinned dependencies into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    -c "$LOCK" -e "$REPO$EXTRAS"
  echo "$want_stamp" >"$STAMP"
fi

# --- `vxswarm` on the user's PATH -----------------------------------------------------------
if [ "$(readlink "$BIN_LINK" 2>/dev/null || true)" != "$VENV/bin/vxswarm" ]; then
  if [ -e "$BIN_LINK" ] && [ ! -L "$BIN_LINK" ]; then
    die "$BIN_LINK exists and is not a symlink: expected to link it to $VENV/bin/vxswarm; move it away first"
  fi
  say "linking $BIN_LINK -> $VENV/bin/vxswarm"
  mkdir -p "$(dirname "$BIN_LINK")"
  ln -sfn "$VENV/bin/vxswarm" "$BIN_LINK"
fi

# --- the job --------------------------------------------------------------------------------
cd "$REPO"
case "$mode" in
  demo) exec "$VENV/bin/vxswarm" lab demo ;;
  test)
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    # The layout's import rules (pyproject.toml [tool.importlinter], docs/architecture.md).
    "$VENV/bin/lint-imports" --no-cache --no-logo
    exec "$VENV/bin/pytest" -q
    ;;
  # The opt-in suite: builds the box if needed, boots the VMs, prints its timings.
  vms) exec "$VENV/bin/pytest" -q -m vms tests/vms ;;
  install | node) ;;
esac
