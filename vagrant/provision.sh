#!/usr/bin/env bash
# Provision one node of the Vagrant lab (see the Vagrantfile): install vxswarm, run its
# daemon under systemd on the node's private address, then form or join the swarm.
#
#   bash vagrant/provision.sh --name NAME --addr IP --role manager|worker --manager IP \
#       [options] [STEP...]
#
# Steps, always run in this order (default: all three):
#   install  `scripts/bootstrap.sh node` (the project's own install path: apt packages,
#            a venv in /opt/vxswarm/venv, the CLI linked at --cli)
#   service  this node's settings in /etc/default/vxswarm, the unit vagrant/vxswarm.service
#            (its ExecStart pointed at --cli), the vxswarm group (the API socket's group;
#            the vagrant user joins it), the kernel modules the data plane needs; then
#            enable and start the daemon and wait until it answers on its socket
#   swarm    when --manager is this node's own --addr: `swarm init --advertise-addr IP`;
#            otherwise `swarm join --advertise-addr IP` with the join token in the
#            environment variable VXSWARM_JOIN_TOKEN, retried until the manager at
#            --manager admits it. The token comes from the user, as with `docker swarm
#            join`: the manager's user API is not on the network (port 2377 is mutual
#            TLS, node to node), so a VM cannot ask it for one. The Vagrantfile passes
#            VXSWARM_WORKER_TOKEN / VXSWARM_MANAGER_TOKEN of the host's environment.
#
# Every step checks before it acts, so a second run (`vagrant provision`) changes
# nothing: files are rewritten only when their content differs, the daemon is restarted
# only when its settings changed, and a node already in the swarm is left alone (unless
# it is in it with another address, role or manager: then it stops with an error, since
# only `vxswarm swarm leave` may undo a membership).
#
# Options:
#   --root DIR         the install and service steps change nothing outside DIR: they write
#                      their files under DIR (DIR/etc/...) and print the commands they would
#                      run (bootstrap, systemctl, groupadd, usermod, modprobe). The swarm
#                      step is unaffected: it only talks to daemons' APIs.
#   --state-dir DIR    the daemon's state dir (default /var/lib/vxswarm); its socket is
#                      DIR/vxswarm.sock
#   --ns-prefix P      prefix of the namespaces the daemon makes (default vx)
#   --resolv-conf F    the daemon's upstream DNS servers (default /etc/resolv.conf)
#   --cli PATH         the vxswarm CLI (default /usr/local/bin/vxswarm)
#   --timeout SECS     longest wait for the manager to admit this node (default 600: with a
#                      provider that boots VMs side by side, manager1 may still be installing)
#
# Output: one "provision NAME: ..." line per check or change, on stdout. Bad arguments:
# one error line naming the value and what was expected, exit 2, nothing touched.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
UNIT_SOURCE="$HERE/vxswarm.service"
UNIT_NAME="vxswarm.service"
#: The CLI path vxswarm.service names; rendering swaps in --cli.
UNIT_CLI="/usr/local/bin/vxswarm"
VENV="/opt/vxswarm/venv"
GROUP="vxswarm"
#: Vagrant's login user: in the socket's group, it runs `vxswarm` without sudo.
CLI_USER="vagrant"
MODULES=(br_netfilter vxlan) # br_netfilter: VIPs are DNAT on the bridge path; not autoloaded
PORT=2377
#: A daemon answers within seconds of its start on a VM with hardware virtualization; under
#: software emulation (no VT-x, or `vxswarm lab vms` here) its Python start-up alone takes
#: 20-60 s, more while the other VMs boot beside it. Waiting longer costs a fast VM nothing.
DAEMON_TIMEOUT=300
ALL_STEPS=(install service swarm)

NAME=""
say() { printf 'provision %s: %s\n' "${NAME:-node}" "$*"; }
die() {
  say "$*" >&2
  exit 1
}
usage_error() {
  printf 'provision: %s (usage: see the top of vagrant/provision.sh)\n' "$*" >&2
  exit 2
}

# --- arguments: all validated before anything is touched --------------------------------
ADDR="" ROLE="" MANAGER="" ROOT=""
STATE_DIR="/var/lib/vxswarm" NS_PREFIX="vx" RESOLV_CONF="/etc/resolv.conf"
CLI="$UNIT_CLI" TIMEOUT=600
STEPS=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --name | --addr | --role | --manager | --root | --state-dir | --ns-prefix | --resolv-conf | --cli | --timeout)
      [ "$#" -ge 2 ] || usage_error "option $1 needs a value"
      case "$1" in
        --name) NAME="$2" ;;
        --addr) ADDR="$2" ;;
        --role) ROLE="$2" ;;
        --manager) MANAGER="$2" ;;
        --root) ROOT="${2%/}" ;;
        --state-dir) STATE_DIR="$2" ;;
        --ns-prefix) NS_PREFIX="$2" ;;
        --resolv-conf) RESOLV_CONF="$2" ;;
        --cli) CLI="$2" ;;
        --timeout) TIMEOUT="$2" ;;
      esac
      shift 2
      ;;
    install | service | swarm)
      STEPS+=("$1")
      shift
      ;;
    *) usage_error "unknown argument '$1': expected an option or a step (install, service, swarm)" ;;
  esac
done

is_ipv4() {
  local IFS=. octet
  local -a octets
  [[ "$1" =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || return 1
  read -r -a octets <<<"$1"
  for octet in "${octets[@]}"; do
    [ "$((10#$octet))" -le 255 ] || return 1
  done
}

# Paths end up in a systemd unit and an EnvironmentFile: no spaces, quotes, '%' or '$'.
check_path() {
  [[ "$2" =~ ^/[A-Za-z0-9._/+-]*$ ]] ||
    usage_error "invalid $1 '$2': expected an absolute path of letters, digits and . _ / + -"
}

[ -n "$NAME" ] || usage_error "missing --name: expected the node name, e.g. manager1"
[[ "$NAME" =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] ||
  usage_error "invalid --name '$NAME': expected a lower-case DNS label (a-z, 0-9, '-'), e.g. worker1"
is_ipv4 "$ADDR" || usage_error "invalid --addr '$ADDR': expected this node's private IPv4 address, e.g. 192.168.56.12"
case "$ROLE" in
  manager | worker) ;;
  *) usage_error "invalid --role '$ROLE': expected manager or worker" ;;
esac
is_ipv4 "$MANAGER" || usage_error "invalid --manager '$MANAGER': expected the first manager's IPv4 address, e.g. 192.168.56.11"
if [ "$MANAGER" = "$ADDR" ] && [ "$ROLE" != manager ]; then
  usage_error "invalid --role '$ROLE' for the node at --manager $MANAGER: expected manager (it runs swarm init)"
fi
[ -z "$ROOT" ] || check_path --root "$ROOT"
check_path --state-dir "$STATE_DIR"
check_path --resolv-conf "$RESOLV_CONF"
check_path --cli "$CLI"
[[ "$NS_PREFIX" =~ ^[a-z0-9][a-z0-9.-]{0,47}$ ]] ||
  usage_error "invalid --ns-prefix '$NS_PREFIX': expected lower-case letters, digits, '.' and '-', at most 48 characters"
[[ "$TIMEOUT" =~ ^[1-9][0-9]{0,5}$ ]] || usage_error "invalid --timeout '$TIMEOUT': expected a whole number of seconds, at least 1"
[ "${#STEPS[@]}" -gt 0 ] || STEPS=("${ALL_STEPS[@]}")

wants() {
  local step
  for step in "${STEPS[@]}"; do [ "$step" = "$1" ] && return 0; done
  return 1
}

if [ -z "$ROOT" ] && { wants install || wants service; } && [ "$(id -u)" -ne 0 ]; then
  die "the install and service steps must run as root (Vagrant's shell provisioner does): try sudo, or --root DIR to render only"
fi

ENV_FILE="$ROOT/etc/default/vxswarm"
UNIT_FILE="$ROOT/etc/systemd/system/$UNIT_NAME"
MODULES_FILE="$ROOT/etc/modules-load.d/vxswarm.conf"
LOCAL_HOST="unix://$STATE_DIR/vxswarm.sock"

# --- helpers -------------------------------------------------------------------------------

# act CMD...: run CMD, or with --root only say that it would run.
act() {
  if [ -n "$ROOT" ]; then
    say "would run: $*"
  else
    "$@"
  fi
}

CHANGED=0
# put_file DEST MODE CONTENT: replace DEST (CONTENT and a newline) only if it differs;
# sets CHANGED=1 when it wrote. An argument, not stdin: a function at the end of a pipe
# runs in a subshell, and CHANGED would be lost.
put_file() {
  local dest="$1" mode="$2" tmp
  mkdir -p "$(dirname "$dest")"
  tmp="$(mktemp "$dest.XXXXXX")"
  printf '%s\n' "$3" >"$tmp"
  if [ -f "$dest" ] && cmp -s "$tmp" "$dest"; then
    rm -f "$tmp"
    say "unchanged $dest"
    return 0
  fi
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$dest" # a rename: a reader sees the old file or the new, never half of one
  CHANGED=1
  say "wrote $dest"
}

OUT=""
# until_ok SECS WHAT CMD...: run CMD until it succeeds (its stdout left in OUT), polling
# for up to SECS seconds; then fail naming WHAT and CMD's last error.
until_ok() {
  local limit="$1" what="$2" deadline err last
  shift 2
  deadline=$((SECONDS + limit))
  err="$(mktemp)"
  until OUT="$("$@" 2>"$err")"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      last="$(tail -n 1 "$err")"
      rm -f "$err"
      die "timed out after ${limit}s waiting for $what; last error: ${last:-none}"
    fi
    sleep 0.5
  done
  rm -f "$err"
}

local_cli() { VXSWARM_HOST="$LOCAL_HOST" "$CLI" "$@"; }

render_env() {
  cat <<EOF
# Settings of the vxswarm daemon of $NAME, read by $UNIT_NAME.
# Written by vagrant/provision.sh: provision again to change them.
VXSWARM_HOSTNAME=$NAME
VXSWARM_LISTEN_ADDR=$ADDR
VXSWARM_STATE_DIR=$STATE_DIR
VXSWARM_NS_PREFIX=$NS_PREFIX
VXSWARM_RESOLV_CONF=$RESOLV_CONF
EOF
}

render_unit() {
  grep -q "^ExecStart=$UNIT_CLI " "$UNIT_SOURCE" ||
    die "$UNIT_SOURCE has no 'ExecStart=$UNIT_CLI ' line: expected it, to point it at $CLI"
  sed "s|^ExecStart=$UNIT_CLI |ExecStart=$CLI |" "$UNIT_SOURCE"
}

# --- steps ---------------------------------------------------------------------------------

install_step() {
  # VXSWARM_BIN_LINK=--cli: the CLI lands where the unit and the swarm step look for it.
  act env "VXSWARM_VENV=$VENV" "VXSWARM_BIN_LINK=$CLI" bash "$REPO/scripts/bootstrap.sh" node
  [ -n "$ROOT" ] || say "vxswarm is installed: $CLI"
}

ensure_group() {
  if [ -n "$ROOT" ]; then
    act groupadd --system "$GROUP"
    act usermod --append --groups "$GROUP" "$CLI_USER"
    return
  fi
  if ! getent group "$GROUP" >/dev/null; then
    groupadd --system "$GROUP"
    say "created group $GROUP"
  fi
  if id "$CLI_USER" >/dev/null 2>&1 && ! id -nG "$CLI_USER" | tr ' ' '\n' | grep -qx "$GROUP"; then
    usermod --append --groups "$GROUP" "$CLI_USER"
    say "added $CLI_USER to group $GROUP (runs vxswarm without sudo from its next login)"
  fi
}

service_step() {
  local settings unit
  # Rendered first, as plain assignments: `set -e` stops at a failed render only there.
  settings="$(render_env)"
  unit="$(render_unit)"
  ensure_group
  put_file "$MODULES_FILE" 0644 "$(printf '%s\n' "${MODULES[@]}")"
  act modprobe -a "${MODULES[@]}"
  CHANGED=0 # from here on: only the daemon's own settings call for a reload and restart
  put_file "$ENV_FILE" 0644 "$settings"
  put_file "$UNIT_FILE" 0644 "$unit"
  [ "$CHANGED" = 0 ] || act systemctl daemon-reload
  if [ -n "$ROOT" ]; then
    act systemctl enable --now "$UNIT_NAME"
    return
  fi
  systemctl enable --quiet "$UNIT_NAME"
  if ! systemctl is-active --quiet "$UNIT_NAME"; then
    systemctl start "$UNIT_NAME"
    say "started $UNIT_NAME"
  elif [ "$CHANGED" = 1 ]; then
    # Tasks survive the restart (KillMode=process): the daemon adopts them again.
    systemctl restart "$UNIT_NAME"
    say "restarted $UNIT_NAME: its settings changed"
  else
    say "$UNIT_NAME is running"
  fi
  until_ok "$DAEMON_TIMEOUT" "the daemon of $NAME to answer on $LOCAL_HOST (journalctl -u $UNIT_NAME tells why not)" \
    local_cli info
  say "the daemon answers on $LOCAL_HOST"
}

# membership INFO_JSON: "ADDR ROLE MANAGER_ADDR" of the node's swarm, "" when it is in none.
membership() {
  python3 -c '
import json, sys
s = json.loads(sys.argv[1]).get("swarm")
if s:
    print(s["node_addr"], "manager" if s["is_manager"] else "worker", s["manager_addr"])
' "$1"
}

swarm_step() {
  local member have_addr have_role have_manager
  [ -x "$CLI" ] || die "no vxswarm CLI at $CLI: expected the install step to have made it"
  until_ok "$DAEMON_TIMEOUT" "the daemon of $NAME to answer on $LOCAL_HOST" \
    local_cli info --format json
  member="$(membership "$OUT")"
  if [ -n "$member" ]; then
    read -r have_addr have_role have_manager <<<"$member"
    if [ "$have_addr" != "$ADDR" ] || [ "$have_role" != "$ROLE" ] || [ "$have_manager" != "$MANAGER:$PORT" ]; then
      die "$NAME is in a swarm as a $have_role with address $have_addr and manager $have_manager: expected a $ROLE with address $ADDR and manager $MANAGER:$PORT (run 'vxswarm swarm leave --force' on it, then provision again)"
    fi
    say "already in the swarm as a $ROLE (address $ADDR, manager $MANAGER:$PORT): nothing to do"
    return
  fi
  if [ "$MANAGER" = "$ADDR" ]; then
    local_cli swarm init --advertise-addr "$ADDR"
    say "swarm initialized; $NAME is its manager at $ADDR:$PORT"
    return
  fi
  # The token comes from the user (the environment, not an argument: `ps` shows those),
  # as `docker swarm join --token` does: nothing on the network hands tokens out.
  local token="${VXSWARM_JOIN_TOKEN:-}"
  [ -n "$token" ] || die "no join token for $NAME: set VXSWARM_JOIN_TOKEN to the $ROLE token of the swarm (on the host: export VXSWARM_$(printf '%s' "$ROLE" | tr '[:lower:]' '[:upper:]')_TOKEN=\"\$(vagrant ssh manager1 -c 'vxswarm swarm join-token -q $ROLE')\"; then vagrant provision $NAME)"
  until_ok "$TIMEOUT" "the manager at $MANAGER:$PORT to admit $NAME as a $ROLE" \
    local_cli swarm join --token "$token" --advertise-addr "$ADDR" "$MANAGER:$PORT"
  say "joined the swarm of $MANAGER:$PORT as a $ROLE, advertising $ADDR"
}

# --- the job -------------------------------------------------------------------------------
for step in "${ALL_STEPS[@]}"; do
  wants "$step" || continue
  "${step}_step"
done
