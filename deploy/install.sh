#!/usr/bin/env bash
# Installs event-capture as a systemd service on Raspberry Pi OS (Bookworm; Pi 4
# and Pi 5) or Debian 12. Run it from a checkout as root:
#
#     sudo deploy/install.sh                      # install or upgrade
#     sudo deploy/install.sh --config rules.toml  # ... with your rule file (first install only)
#     sudo deploy/install.sh --extras modbus,opcua  # ... with optional features' libraries
#     sudo deploy/install.sh --uninstall          # remove; snapshots and config stay
#
# Safe to run again: an existing /etc/event-capture/rules.toml or secrets.env
# is never overwritten, and the rule file is checked before the service is
# (re)started, so a broken file never replaces a running service.
#
# It needs systemd running as the init system: in a container or WSL without
# it, the installer says so and what works instead before it changes anything.
#
# For tests and staging every path is prefixed with --root DIR (or $DESTDIR),
# and the system commands can be replaced through the environment:
# SYSTEMCTL, APT_GET, USERADD, USERMOD, GETENT, CHOWN, PYTHON, PI_MODEL_FILE,
# SYSTEMD_RUNTIME_DIR (the folder a running systemd creates, /run/systemd/system).
set -euo pipefail

SERVICE=event-capture
SERVICE_USER=event-capture

SYSTEMCTL=${SYSTEMCTL:-systemctl}
APT_GET=${APT_GET:-apt-get}
USERADD=${USERADD:-useradd}
USERMOD=${USERMOD:-usermod}
GETENT=${GETENT:-getent}
CHOWN=${CHOWN:-chown}
PYTHON=${PYTHON:-/usr/bin/python3}
PI_MODEL_FILE=${PI_MODEL_FILE:-/proc/device-tree/model}
SYSTEMD_RUNTIME_DIR=${SYSTEMD_RUNTIME_DIR:-/run/systemd/system}

usage() {
    cat <<'EOF'
usage: install.sh [--config FILE] [--wheel FILE] [--extras LIST] [--no-start] [--root DIR]
       install.sh --uninstall [--root DIR]

  --config FILE   rule file to install as /etc/event-capture/rules.toml when
                  there is none yet (default: rules.example.toml)
  --wheel FILE    install this event-capture wheel instead of the checkout
  --extras LIST   also install the libraries of optional features, each from
                  its deploy/extras/NAME.lock (comma-separated: detect, modbus,
                  opcua, stream, upload); also $CAPTURE_EXTRAS
  --no-start      install and enable, but do not (re)start the service
  --root DIR      install under DIR instead of / (tests, staging); also $DESTDIR
  --uninstall     stop and remove the service, program and unit; keep the
                  snapshots (/var/lib/event-capture), the configuration
                  (/etc/event-capture) and the event-capture user
EOF
}

log() { printf '[install] %s\n' "$*"; }
die() {
    printf '[install] error: %s\n' "$*" >&2
    exit 1
}

ROOT=${DESTDIR:-}
CONFIG_SOURCE=""
WHEEL=""
EXTRAS=${CAPTURE_EXTRAS:-}
START=yes
ACTION=install
while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
        --config) CONFIG_SOURCE=${2:?--config needs a file}; shift 2 ;;
        --wheel) WHEEL=${2:?--wheel needs a file}; shift 2 ;;
        --extras) EXTRAS=${2:?--extras needs a list, e.g. modbus,opcua}; shift 2 ;;
        --no-start) START=no; shift ;;
        --uninstall) ACTION=uninstall; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
ROOT=${ROOT%/}
CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EXTRA_LOCKS=()
for extra in ${EXTRAS//,/ }; do
    if [ ! -f "$CHECKOUT/deploy/extras/$extra.lock" ]; then
        known=()
        for lock in "$CHECKOUT"/deploy/extras/*.lock; do
            known+=("$(basename "$lock" .lock)")
        done
        listing=$(IFS=,; echo "${known[*]}")
        die "unknown extra: $extra (known: ${listing//,/, })"
    fi
    EXTRA_LOCKS+=(--requirement "$CHECKOUT/deploy/extras/$extra.lock")
done

PREFIX=/opt/event-capture
VENV=$PREFIX/venv
CONFIG_DIR=/etc/event-capture
RULES=$CONFIG_DIR/rules.toml
# The checksum of the example as the installer put it in place: while the rule
# file still has it, it describes a fictional factory and the service stays stopped.
EXAMPLE_SUM=$CONFIG_DIR/rules.example.sha256
SECRETS=$CONFIG_DIR/secrets.env
STATE_DIR=/var/lib/event-capture
UNIT=/etc/systemd/system/$SERVICE.service
LINK=/usr/local/bin/capture

if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root: sudo $0"
fi

# ---------------------------------------------------------------- install steps

systemd_running() {
    # What sd_booted(3) checks: systemd creates this folder when it is the init system.
    [ -d "$SYSTEMD_RUNTIME_DIR" ]
}

refuse_without_systemd() {
    # Checked before anything changes: a half-done install (user, venv and config,
    # but no service) would leave the technician to guess what is missing.
    systemd_running && return 0
    {
        printf '[install] error: %s\n' \
            "systemd is not running here (no $SYSTEMD_RUNTIME_DIR: a container, or WSL?)," \
            "and the installer sets event-capture up as a systemd service. Nothing was changed."
        printf '[install] %s\n' \
            "Without systemd, run it by hand from this checkout:" \
            "  ./dev demo                        # creates .venv; simulated cameras, no hardware" \
            "  cp rules.example.toml rules.toml  # then edit it for this line" \
            "  .venv/bin/capture check && .venv/bin/capture run" \
            "Every command works without systemd; only the start at boot, the restart after a" \
            "crash and the watchdog need it. Guide: docs/install.md, \"Without systemd\"."
    } >&2
    exit 1
}

is_raspberry_pi() {
    [ -r "$PI_MODEL_FILE" ] && tr -d '\0' <"$PI_MODEL_FILE" | grep -q "Raspberry Pi"
}

apt_install() {
    # The package lists of a fresh image may be empty or old: update once, then again.
    "$APT_GET" install -y -q --no-install-recommends "$@" || {
        "$APT_GET" update -q && "$APT_GET" install -y -q --no-install-recommends "$@"
    }
}

install_packages() {
    # python3-venv: the service's own virtual environment; mosquitto-clients:
    # mosquitto_sub/pub to watch events and test mqtt triggers from the Pi.
    local packages=(python3 python3-venv mosquitto-clients)
    log "Debian packages: ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_install "${packages[@]}"
    # lgpio is gpiozero's GPIO library on Bookworm (the only one on a Pi 5);
    # Debian's build is used through the venv's system site-packages. Raspberry Pi
    # OS has it; plain Debian 12 on a Pi does not, and the rest works without it.
    if is_raspberry_pi; then
        log "Debian package for GPIO: python3-lgpio"
        if ! apt_install python3-lgpio; then
            log "python3-lgpio is not in this system's package archives (Raspberry Pi OS has it;"
            log "  plain Debian does not): gpio triggers cannot run here, everything else can"
        fi
    fi
}

create_user() {
    if "$GETENT" passwd "$SERVICE_USER" >/dev/null; then
        log "user $SERVICE_USER exists"
    else
        log "creating system user $SERVICE_USER"
        "$USERADD" --system --user-group --no-create-home \
            --home-dir "$STATE_DIR" --shell /usr/sbin/nologin \
            --comment "event-capture service" "$SERVICE_USER"
    fi
    # gpio: /dev/gpiochip* and /dev/gpiomem on Raspberry Pi OS; dialout: serial ports.
    local group
    for group in gpio dialout; do
        if "$GETENT" group "$group" >/dev/null; then
            "$USERMOD" --append --groups "$group" "$SERVICE_USER"
        else
            log "no group $group on this machine (fine without GPIO or serial triggers)"
        fi
    done
    # The technician who ran sudo may then run `capture check` and read snapshots.
    if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
        "$USERMOD" --append --groups "$SERVICE_USER" "$SUDO_USER"
        log "added $SUDO_USER to group $SERVICE_USER (takes effect at the next login)"
    fi
}

install_program() {
    if [ ! -x "$ROOT$VENV/bin/python" ]; then
        log "creating $VENV"
        mkdir -p "$ROOT$PREFIX"
        "$PYTHON" -m venv --system-site-packages "$ROOT$VENV"
    fi
    local source=$CHECKOUT
    if [ -n "$WHEEL" ]; then
        source=$WHEEL
    fi
    # Exactly the releases CI tested (deploy/requirements.lock, checked by hash),
    # then the program itself without resolving anything again. (CI proves the lock
    # meets pyproject.toml: tests/deploy/test_lock.py. No `pip check` here: the venv
    # sees the system's packages, for Debian's GPIO libraries, and their conflicts.)
    # With --extras, each extra's lock too: the install lock plus that extra's
    # libraries, the releases they share equal (./dev lock resolves them with the
    # install lock as constraints; tests/deploy/test_lock.py checks it).
    log "installing the locked dependencies (deploy/requirements.lock${EXTRAS:+, extras: $EXTRAS})"
    "$ROOT$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --require-hashes --requirement "$CHECKOUT/deploy/requirements.lock" "${EXTRA_LOCKS[@]}"
    log "installing event-capture from $source"
    "$ROOT$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-deps --upgrade "$source"
    mkdir -p "$ROOT$PREFIX/docs" "$ROOT/usr/local/bin"
    cp -R "$CHECKOUT/docs/." "$ROOT$PREFIX/docs/"
    cp "$CHECKOUT/rules.example.toml" "$ROOT$PREFIX/rules.example.toml"
    # The command technicians type: the venv's capture with the service's secrets.
    install -D -m 0755 "$CHECKOUT/deploy/capture" "$ROOT$PREFIX/bin/capture"
    ln -sfn "$PREFIX/bin/capture" "$ROOT$LINK"
}

install_config() {
    install -d -m 0750 "$ROOT$CONFIG_DIR"
    "$CHOWN" "root:$SERVICE_USER" "$ROOT$CONFIG_DIR"
    if [ -e "$ROOT$RULES" ]; then
        log "keeping $RULES"
        if [ -n "$CONFIG_SOURCE" ]; then
            log "not installing $CONFIG_SOURCE: $RULES exists (edit it, or remove it first)"
        fi
    else
        local source=${CONFIG_SOURCE:-$CHECKOUT/rules.example.toml}
        [ -r "$source" ] || die "cannot read rule file $source"
        # Passwords may be in it: readable by root and the service only.
        install -m 0640 "$source" "$ROOT$RULES"
        "$CHOWN" "root:$SERVICE_USER" "$ROOT$RULES"
        log "installed $RULES from $source"
        if [ -z "$CONFIG_SOURCE" ]; then
            sha256 "$ROOT$RULES" >"$ROOT$EXAMPLE_SUM"
            chmod 0644 "$ROOT$EXAMPLE_SUM"
        fi
    fi
    if [ -e "$ROOT$SECRETS" ]; then
        log "keeping $SECRETS"
    else
        install -m 0600 "$CHECKOUT/deploy/secrets.env.example" "$ROOT$SECRETS"
        "$CHOWN" root:root "$ROOT$SECRETS"
        log "created $SECRETS (mode 0600): put referenced passwords there"
    fi
    install -d -m 0750 "$ROOT$STATE_DIR"
    "$CHOWN" "$SERVICE_USER:$SERVICE_USER" "$ROOT$STATE_DIR"
}

sha256() {
    sha256sum <"$1" | cut -d' ' -f1
}

rules_are_the_untouched_example() {
    # The example as first installed (an upgrade may ship a newer one), or as this
    # checkout has it (a rule file copied from the example, or an older installer).
    local sum
    sum=$(sha256 "$ROOT$RULES")
    [ "$sum" = "$(sha256 "$CHECKOUT/rules.example.toml")" ] ||
        { [ -r "$ROOT$EXAMPLE_SUM" ] && [ "$sum" = "$(cat "$ROOT$EXAMPLE_SUM")" ]; }
}

keep_previous_program() {
    # An upgrade keeps the installed version until the new one is installed and
    # accepts the rule file: a pip download cut off half-way, or new code whose
    # `capture check` (ExecStartPre) refuses the file, would otherwise stop the
    # line at the next restart (a reboot, a crash, the watchdog).
    # The copy is renamed into place whole, so a complete one means a run before was cut
    # off (a power cut) after it: what it had replaced may be half-installed, the copy not.
    rm -rf "$ROOT$PREFIX.copying"
    if [ -d "$ROOT$PREFIX.previous" ]; then
        log "an earlier upgrade did not finish: starting from the version installed before it"
        rm -rf "$ROOT$PREFIX"
        mv "$ROOT$PREFIX.previous" "$ROOT$PREFIX"
    fi
    if [ -x "$ROOT$VENV/bin/python" ]; then
        cp -a "$ROOT$PREFIX" "$ROOT$PREFIX.copying"
        mv "$ROOT$PREFIX.copying" "$ROOT$PREFIX.previous"
        trap put_back_previous_program EXIT
    fi
}

put_back_previous_program() {
    # On any failure until check_rules accepted the new version (the installer exits).
    local status=$?
    if [ "$status" -ne 0 ] && [ -d "$ROOT$PREFIX.previous" ]; then
        rm -rf "$ROOT$PREFIX"
        mv "$ROOT$PREFIX.previous" "$ROOT$PREFIX"
        printf '[install] the version installed before is put back: a restart runs it as before\n' >&2
    fi
}

check_rules() {
    log "checking $RULES"
    # Through the installed `capture`, which reads secrets.env as systemd does.
    if ! CAPTURE_SECRETS=$ROOT$SECRETS "$ROOT$PREFIX/bin/capture" check --quiet -c "$ROOT$RULES"; then
        die "$RULES has errors (above); fix them, run 'capture check', then run the installer again. The service was not (re)started."
    fi
    trap - EXIT
    rm -rf "$ROOT$PREFIX.previous"
}

install_unit() {
    install -D -m 0644 "$CHECKOUT/deploy/$SERVICE.service" "$ROOT$UNIT"
    "$SYSTEMCTL" daemon-reload
}

start_service() {
    if rules_are_the_untouched_example; then
        # Its cameras and triggers do not exist: started (now or at the next boot), it
        # would only knock on the plant's addresses with the example's logins.
        log "not enabled or started: $RULES is still the untouched example, a fictional factory."
        log "next: edit $RULES for this line (its cameras, triggers and rules;"
        log "  guide: $PREFIX/docs/technician.md), run 'sudo capture check',"
        log "  then 'sudo systemctl enable --now $SERVICE' (or run this installer again)"
        return
    fi
    "$SYSTEMCTL" enable "$SERVICE"
    if [ "$START" = no ]; then
        log "enabled; start it with: systemctl start $SERVICE"
    else
        # restart: starts a stopped service, and an upgrade runs the new code.
        "$SYSTEMCTL" restart "$SERVICE"
        log "running; watch it with: journalctl -u $SERVICE -f"
    fi
}

install_all() {
    refuse_without_systemd
    install_packages
    create_user
    keep_previous_program
    install_program
    install_config
    check_rules
    install_unit
    start_service
    log "done"
}

# ---------------------------------------------------------------- uninstall

uninstall_all() {
    if [ -e "$ROOT$UNIT" ]; then
        if systemd_running; then
            "$SYSTEMCTL" disable --now "$SERVICE" || log "could not stop $SERVICE (already stopped?)"
        fi
        rm -f "$ROOT$UNIT"
        if systemd_running; then
            "$SYSTEMCTL" daemon-reload
        fi
    fi
    if [ -L "$ROOT$LINK" ]; then
        rm -f "$ROOT$LINK"
    fi
    rm -rf "$ROOT$PREFIX"
    log "removed the service, $PREFIX and $LINK"
    log "kept: $STATE_DIR (snapshots, journal), $CONFIG_DIR (rules, secrets),"
    log "and user $SERVICE_USER, which owns them (userdel $SERVICE_USER removes it)"
}

case "$ACTION" in
    install) install_all ;;
    uninstall) uninstall_all ;;
esac
