#!/usr/bin/env bash
# Proves the Raspberry Pi install on arm64: in an emulated Debian 12 (bookworm)
# arm64 root, the way a technician installs it on Raspberry Pi OS (64-bit),
#
#   1. deploy/install.sh without systemd refuses and changes nothing;
#   2. deploy/install.sh installs (systemd present, as on a Pi, but not booted);
#   3. as the service user: capture --version, capture check on the installed
#      example, capture demo for a bounded time with every JPEG it wrote valid
#      and a clean stop on SIGINT, capture snap against the camera simulator,
#      and a gpio trigger on a machine without /dev/gpiochip*: the documented
#      message, the other triggers still capturing;
#   4. deploy/install.sh --extras detect,stream: the real COCO-SSD model finds
#      a drawn stop sign through onnxruntime, PyAV has its H.264 decoder.
#
#     deploy/test-arm64.sh            # what ./dev test-arm64 and ./dev test run
#
# Needs root (chroot, mounts, binfmt_misc), debootstrap and qemu-user-static
# (./dev installs both). Without root or binfmt_misc it prints why and skips,
# unless CAPTURE_REQUIRE_TOOLS=1 (./dev test, CI): then it fails.
#
# The arm64 root (debootstrap), its .debs, pip's cache and apt's downloads are
# cached in $CAPTURE_ARM64_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/event-capture/arm64),
# the root under a key of what invalidates it (suite, architecture, packages,
# mirror, recipe); each run works on a throwaway overlay of it, so the cached
# root stays as built. One run at a time per cache (a lock file); every mount
# is made in a private mount namespace, so none outlives the run.
# shellcheck disable=SC2317 # the checks are called through `step NAME FUNCTION`
set -euo pipefail
shopt -s inherit_errexit

SUITE=bookworm
ARCH=arm64
# systemd: Raspberry Pi OS has it (the installer enables its unit offline here);
# python3, python3-venv: what the issue's minimal Pi image is assumed to have.
BASE_PACKAGES=python3,python3-venv,systemd
# Bump when the way the root is built changes: a new key, a new root.
RECIPE=1
SERVICE_USER=event-capture
TECHNICIAN=tech
DEMO_SECONDS=${CAPTURE_ARM64_DEMO_S:-30}
MIN_DEMO_JPEGS=5

CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CAPTURE_ARM64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/event-capture/arm64}
QEMU=/usr/bin/qemu-aarch64-static
BINFMT_DIR=/proc/sys/fs/binfmt_misc
BINFMT_CONF=/usr/lib/binfmt.d/qemu-aarch64.conf

log() { printf '[arm64] %s\n' "$*"; }
die() {
    printf '[arm64] error: %s\n' "$*" >&2
    exit 1
}

skip_or_fail() {
    # Only where emulation cannot work at all; ./dev test and CI never skip.
    if [ "${CAPTURE_REQUIRE_TOOLS:-}" = 1 ]; then
        die "cannot run the arm64 install proof: $*; CAPTURE_REQUIRE_TOOLS=1 (./dev test, CI) requires it"
    fi
    log "SKIPPED: the arm64 install proof cannot run here: $*"
    exit 0
}

# ---------------------------------------------------------------- preflight

preflight() {
    [ "$(id -u)" -eq 0 ] || skip_or_fail "it needs root (chroot, mounts, binfmt_misc); run: sudo $0"
    grep -qw binfmt_misc /proc/filesystems 2>/dev/null || modprobe binfmt_misc 2>/dev/null ||
        skip_or_fail "this kernel has no binfmt_misc, so arm64 programs cannot be emulated"
    local tool
    for tool in debootstrap "$QEMU" unshare chroot flock nsenter setpriv ip git; do
        command -v "$tool" >/dev/null ||
            die "$tool is missing (./dev test-arm64 installs debootstrap and qemu-user-static)"
    done
}

register_qemu() {
    # The F flag (fix-binary) makes the kernel open the interpreter now, from this
    # root, so the arm64 root needs no copy of qemu inside.
    [ -e "$BINFMT_DIR/register" ] || mount -t binfmt_misc binfmt_misc "$BINFMT_DIR" ||
        skip_or_fail "binfmt_misc cannot be mounted on $BINFMT_DIR (a container without the privilege?)"
    local entry=$BINFMT_DIR/qemu-aarch64
    if [ -e "$entry" ]; then
        grep -qx enabled "$entry" || die "$entry is registered but disabled; enable it: echo 1 > $entry"
        grep -q '^flags:.*F' "$entry" ||
            die "$entry is registered without the F flag, so a chroot needs qemu inside; re-register it: echo -1 > $entry, then run again"
        return 0
    fi
    [ -r "$BINFMT_CONF" ] || die "$BINFMT_CONF is missing (Debian package qemu-user-static)"
    log "registering qemu-aarch64 with binfmt_misc (from $BINFMT_CONF)"
    grep -m1 '^:qemu-aarch64:' "$BINFMT_CONF" >"$BINFMT_DIR/register" ||
        die "could not register qemu-aarch64 with binfmt_misc"
    grep -q '^flags:.*F' "$entry" || die "qemu-aarch64 registered without the F flag ($BINFMT_CONF)"
}

debian_mirror() {
    # The Debian mirror this machine's apt uses (deb822 or one-line sources).
    local url
    url=$(
        {
            sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null
            sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\)[[:space:]].*/\2/p' \
                /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
        } | tr ' ' '\n' | grep -E '^https?://.*/debian/?$' | head -n1
    ) || true
    printf '%s\n' "${CAPTURE_ARM64_MIRROR:-${url:-http://deb.debian.org/debian}}"
}

# ---------------------------------------------------------------- steps and timing

PASSED=0
FAILED=0
TIMINGS=()

step() {
    # step NAME FUNCTION: runs it with its output in a log, times it, and on
    # failure prints the log's end and stops the run. The function runs as a job
    # of its own, where `set -e` holds (in `f || ...` bash would ignore it).
    local name=$1 started elapsed status=0
    shift
    started=$(date +%s.%N)
    log "... $name"
    "$@" >"$LOGS/$name.log" 2>&1 9>&- &
    wait $! || status=$?
    elapsed=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    TIMINGS+=("$(printf '%-22s %7s s' "$name" "$elapsed")")
    if [ "$status" -ne 0 ]; then
        FAILED=$((FAILED + 1))
        log "FAIL $name (${elapsed} s, exit $status); the end of its log:"
        tail -n 40 "$LOGS/$name.log" | sed 's/^/    /'
        keep_logs
        summary
        exit 1
    fi
    # Preparations (COUNTED=no) are timed, but only checks count as passed.
    [ "${COUNTED:-yes}" = no ] || PASSED=$((PASSED + 1))
    log "ok   $name (${elapsed} s)"
}

keep_logs() {
    rm -rf "$CACHE/last-failure"
    cp -R "$LOGS" "$CACHE/last-failure"
    log "all logs of this run: $CACHE/last-failure/"
}

summary() {
    log "timings ($ROOT_STATE root):"
    printf '    %s\n' "${TIMINGS[@]}"
    printf 'arm64: %d passed, %d failed\n' "$PASSED" "$FAILED"
}

same() {
    # same WHAT EXPECTED ACTUAL
    [ "$2" = "$3" ] || {
        printf '%s: expected %s, got %s\n' "$1" "'$2'" "'$3'"
        return 1
    }
}

expect() {
    # expect FILE TEXT: FILE (a log) contains TEXT, or the check fails with the
    # file's end and what it lacks, last (what the run prints of a failed step).
    grep -qF -- "$2" "$1" || {
        printf -- '--- the end of %s:\n' "${1##*/}"
        tail -n 25 "$1"
        printf 'expected in %s: %s\n' "${1##*/}" "$2"
        return 1
    }
}

wait_for_text() {
    # wait_for_text FILE TEXT SECONDS PID: until FILE has TEXT; fails when PID dies first.
    local deadline=$((SECONDS + $3))
    until grep -qF -- "$2" "$1" 2>/dev/null; do
        kill -0 "$4" 2>/dev/null || { printf 'process exited before printing: %s\n' "$2"; return 1; }
        [ "$SECONDS" -lt "$deadline" ] || { printf 'not printed within %s s: %s\n' "$3" "$2"; return 1; }
        sleep 0.5
    done
}

stop_and_wait() {
    # stop_and_wait PID SECONDS: SIGINT (Ctrl-C), then its exit status; 124 if it hangs.
    local deadline=$((SECONDS + $2)) status=0
    kill -INT "$1"
    while kill -0 "$1" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            printf 'still running %s s after SIGINT; killed\n' "$2"
            kill -KILL "$1"
            wait "$1" || true
            return 124
        fi
        sleep 0.5
    done
    wait "$1" || status=$?
    return "$status"
}

# ---------------------------------------------------------------- the cached root

root_key() {
    printf '%s\n' "$SUITE" "$ARCH" "$BASE_PACKAGES" "$MIRROR" "$RECIPE" | sha256sum | cut -c1-12
}

build_root() {
    local partial=$ROOT_DIR.partial
    rm -rf "$partial"
    mkdir -p "$CACHE/debs"
    debootstrap --arch="$ARCH" --variant=minbase --include="$BASE_PACKAGES" \
        --cache-dir="$CACHE/debs" "$SUITE" "$partial" "$MIRROR"
    # The downloaded .debs stay in $CACHE/debs for the next build, not in the root.
    chroot "$partial" apt-get clean
    [ "$(chroot "$partial" uname -m)" = aarch64 ] || die "the root does not run as aarch64"
    mv "$partial" "$ROOT_DIR"
    # Roots of other keys (older recipes, another mirror) are only in the way now.
    find "$CACHE/roots" -mindepth 1 -maxdepth 1 ! -path "$ROOT_DIR" -exec rm -rf {} +
}

# ---------------------------------------------------------------- one run's root

mount_run_root() {
    # A throwaway overlay of the cached root, with what a booted Pi would offer.
    mkdir -p "$RUN/upper" "$RUN/work" "$MERGED"
    mount -t overlay overlay -o "lowerdir=$ROOT_DIR,upperdir=$RUN/upper,workdir=$RUN/work" "$MERGED"
    mount -t proc proc "$MERGED/proc"
    # qemu-user passes the host's x86 /proc/cpuinfo through, and onnxruntime's
    # cpuinfo library crashes on it at import (SIGSEGV); a Pi 4's own text, as
    # the device shows it, stands in. Nothing else here reads it.
    pi_cpuinfo >"$RUN/cpuinfo"
    mount --bind "$RUN/cpuinfo" "$MERGED/proc/cpuinfo"
    mount -t sysfs -o ro sysfs "$MERGED/sys"
    # A /dev of its own: the usual character devices and nothing of the host's
    # hardware, so no /dev/gpiochip* whatever this machine has.
    mount -t tmpfs -o mode=0755,nosuid dev "$MERGED/dev"
    mknod -m 0666 "$MERGED/dev/null" c 1 3
    mknod -m 0666 "$MERGED/dev/zero" c 1 5
    mknod -m 0666 "$MERGED/dev/full" c 1 7
    mknod -m 0666 "$MERGED/dev/random" c 1 8
    mknod -m 0666 "$MERGED/dev/urandom" c 1 9
    mknod -m 0666 "$MERGED/dev/tty" c 5 0
    install -d -m 1777 "$MERGED/dev/shm"
    mkdir "$MERGED/dev/pts"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$MERGED/dev/pts"
    ln -s pts/ptmx "$MERGED/dev/ptmx"
    ln -s /proc/self/fd "$MERGED/dev/fd"
    ln -s /proc/self/fd/0 "$MERGED/dev/stdin"
    ln -s /proc/self/fd/1 "$MERGED/dev/stdout"
    ln -s /proc/self/fd/2 "$MERGED/dev/stderr"
    mount -t tmpfs -o mode=0755,nosuid,nodev run "$MERGED/run"
    # pip's cache (root's, where the installer's pip looks): wheels it built, and the
    # downloads a registry lets it keep (PyPI does; a proxy may say nothing, and
    # then pip keeps none: on the development machine downloads take ~2 s anyway).
    mkdir -p "$CACHE/pip" "$CACHE/apt-archives/partial" "$MERGED/root/.cache/pip"
    mount --bind "$CACHE/pip" "$MERGED/root/.cache/pip"
    mount --bind "$CACHE/apt-archives" "$MERGED/var/cache/apt/archives"
    cp /etc/resolv.conf "$MERGED/etc/resolv.conf"
    copy_pip_configuration
}

copy_pip_configuration() {
    # pip in the root reaches the registries the way this machine's pip does: its
    # configuration files, its PIP_* variables (passed in root_env), the CA bundles
    # they name, and read-only the local folders they name (find-links, file:// indexes).
    local file
    for file in /etc/pip.conf /etc/xdg/pip "$HOME/.config/pip"; do
        [ -e "$file" ] || continue
        case "$file" in
            "$HOME"/*) mkdir -p "$MERGED/root/.config" && cp -R "$file" "$MERGED/root/.config/" ;;
            *) mkdir -p "$MERGED$(dirname "$file")" && cp -R "$file" "$MERGED$file" ;;
        esac
    done
    local word path
    for word in $(pip_settings); do
        path=${word#file://}
        case "$path" in /*) ;; *) continue ;; esac
        if [ -f "$path" ]; then
            mkdir -p "$MERGED$(dirname "$path")"
            cp "$path" "$MERGED$path"
        elif [ -d "$path" ]; then
            # A file:// "simple" index links to files beside it (../../files/...).
            [ "${path##*/}" = simple ] && path=$(dirname "$path")
            mkdir -p "$MERGED$path"
            mount --bind -o ro "$path" "$MERGED$path"
        fi
    done
}

pip_settings() {
    # Every value of this machine's pip settings that may name a file or folder.
    {
        env | sed -n 's/^\(PIP_[A-Z_]*\|SSL_CERT_FILE\|REQUESTS_CA_BUNDLE\|CURL_CA_BUNDLE\)=//p'
        cat /etc/pip.conf /etc/xdg/pip/pip.conf "$HOME/.config/pip/pip.conf" 2>/dev/null |
            sed -n 's/^[[:space:]]*[a-z-]*[[:space:]]*=[[:space:]]*//p'
    } | tr ' ' '\n' | grep -E '^(file://)?/' | sort -u || true
}

unmount_run_root() {
    # Processes still in the root (a hung step) first, then every mount, innermost first.
    local proc
    for proc in /proc/[0-9]*; do
        [ "$(readlink "$proc/root" 2>/dev/null)" = "$MERGED" ] && kill -KILL "${proc#/proc/}" 2>/dev/null
    done
    [ -z "${NETNS_PID:-}" ] || kill "$NETNS_PID" 2>/dev/null || true
    if mountpoint -q "$MERGED"; then
        umount --recursive "$MERGED" || umount --recursive --lazy "$MERGED"
    fi
    # rm -r must never reach through a mount that is still there (the caches).
    if grep -qF " $RUN/" /proc/self/mountinfo; then
        log "error: mounts under $RUN are left (this run's namespace drops them); not removing it"
        return 1
    fi
    rm -rf "$RUN"
}

pi_cpuinfo() {
    # /proc/cpuinfo of a Raspberry Pi 4 Model B (Cortex-A72), 64-bit kernel, with as
    # many cores as /sys (this machine's) lists, so the two agree.
    local cpu count
    count=$(find /sys/devices/system/cpu -maxdepth 1 -name 'cpu[0-9]*' | wc -l)
    for ((cpu = 0; cpu < count; cpu++)); do
        printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$cpu"
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
    done
    printf 'Revision\t: c03112\nSerial\t\t: 10000000abcdef01\nModel\t\t: Raspberry Pi 4 Model B Rev 1.2\n'
}

root_env() {
    # A clean environment, as after `sudo`, with this machine's pip settings.
    local variable
    printf '%s\n' HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 TERM=dumb
    for variable in $(compgen -e); do
        case "$variable" in
            PIP_CACHE_DIR | PIP_NO_CACHE_DIR) ;;
            PIP_* | SSL_CERT_FILE | SSL_CERT_DIR | REQUESTS_CA_BUNDLE | CURL_CA_BUNDLE)
                printf '%s=%s\n' "$variable" "${!variable}" ;;
        esac
    done
}

in_root() {
    # As root in the run's root, from DIR when DIR= is set.
    local environment=()
    mapfile -t environment < <(root_env)
    # shellcheck disable=SC2016 # expanded by the root's sh, from its arguments
    chroot "$MERGED" /usr/bin/env -i "${environment[@]}" "${EXTRA_ENV[@]}" \
        /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "${DIR:-/}" "$@"
}

service_user_command() {
    # As the service user, in the run's network namespace: loopback only, so no
    # broker answers and no port of this machine's other services is in reach.
    # Every program in it execs the next, so a background one's $! is capture's.
    # shellcheck disable=SC2016 # expanded by the root's sh
    COMMAND=(
        nsenter --net="/proc/$NETNS_PID/ns/net"
        chroot --userspec="$SERVICE_USER:$SERVICE_USER" "$MERGED"
        /usr/bin/env -i HOME="/var/lib/$SERVICE_USER" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8
        /bin/sh -c 'cd "$HOME" && exec "$@"' sh "$@"
    )
}

as_service_user() {
    service_user_command "$@"
    "${COMMAND[@]}"
}

start_as_service_user() {
    # start_as_service_user LOG COMMAND...: in the background, its pid in STARTED.
    local output=$1
    shift
    service_user_command "$@"
    "${COMMAND[@]}" >"$output" 2>&1 &
    STARTED=$!
}

start_network() {
    # A network namespace with loopback only, held by a process of its own for the
    # steps run as the service user (as_service_user).
    # --pdeathsig: should this script be killed outright, the holder goes with it
    # (it would keep the mount namespace, and so its mounts, alive).
    setpriv --pdeathsig KILL unshare --net sleep infinity 9>&- >/dev/null 2>&1 &
    NETNS_PID=$!
    local deadline=$((SECONDS + 10))
    # $! is unshare's process before it has left this namespace for the new one.
    until [ "$(readlink "/proc/$NETNS_PID/ns/net")" != "$(readlink /proc/self/ns/net)" ]; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.1
    done
    nsenter --net="/proc/$NETNS_PID/ns/net" ip link set lo up || return 1
}

# ---------------------------------------------------------------- the checks

EXTRA_ENV=()
CHECKOUT_IN_ROOT=/home/$TECHNICIAN/event-capture

copy_checkout() {
    # The technician's clone: what git tracks here (committed or not), nothing else.
    in_root useradd --create-home --shell /bin/bash "$TECHNICIAN"
    mkdir -p "$MERGED$CHECKOUT_IN_ROOT"
    (
        cd "$CHECKOUT"
        git ls-files -z --cached --others --exclude-standard |
            while IFS= read -r -d '' file; do [ -e "$file" ] && printf '%s\0' "$file"; done |
            tar --null --files-from=- -cf -
    ) | tar -xf - -C "$MERGED$CHECKOUT_IN_ROOT"
    in_root chown -R "$TECHNICIAN:$TECHNICIAN" "$CHECKOUT_IN_ROOT"
    [ -x "$MERGED$CHECKOUT_IN_ROOT/deploy/install.sh" ]
}

check_installer_refuses_without_systemd() {
    local status=0 out=$LOGS/installer-no-systemd.out
    EXTRA_ENV=("SUDO_USER=$TECHNICIAN")
    DIR=$CHECKOUT_IN_ROOT in_root deploy/install.sh >"$out" 2>&1 || status=$?
    EXTRA_ENV=()
    cat "$out"
    [ "$status" -eq 1 ] || { echo "exit status $status, expected 1"; return 1; }
    expect "$out" "[install] error: systemd is not running here (no /run/systemd/system: a container, or WSL?),"
    expect "$out" "Nothing was changed."
    expect "$out" 'Guide: docs/install.md, "Without systemd".'
    local path
    for path in /opt/event-capture /etc/event-capture /var/lib/event-capture /usr/local/bin/capture; do
        [ ! -e "$MERGED$path" ] || { echo "changed nothing, yet $path exists"; return 1; }
    done
    ! in_root getent passwd "$SERVICE_USER" || { echo "changed nothing, yet user $SERVICE_USER exists"; return 1; }
}

check_installer() {
    # systemd installed but not booted (a chroot): the folder sd_booted(3) checks
    # is made by hand, and SYSTEMD_OFFLINE=1 (systemd's own switch for a chroot)
    # has systemctl enable the unit offline and ignore daemon-reload; the
    # untouched example is never enabled or started, so nothing else needs a
    # running systemd.
    local out=$LOGS/installer.out
    mkdir -p "$MERGED/run/systemd/system"
    EXTRA_ENV=("SUDO_USER=$TECHNICIAN" SYSTEMD_OFFLINE=1)
    DIR=$CHECKOUT_IN_ROOT in_root deploy/install.sh >"$out" 2>&1 || {
        cat "$out"
        return 1
    }
    EXTRA_ENV=()
    cat "$out"
    expect "$out" "[install] installing event-capture from $CHECKOUT_IN_ROOT"
    expect "$out" "[install] not enabled or started: /etc/event-capture/rules.toml is still the untouched example, a fictional factory."
    expect "$out" "[install] done"
    same "systemctl is-enabled event-capture" disabled "$(in_root env SYSTEMD_OFFLINE=1 systemctl is-enabled event-capture || true)"
    # What the technician runs after editing the example: the installed unit enables.
    in_root env SYSTEMD_OFFLINE=1 systemctl enable event-capture >/dev/null 2>&1
    same "systemctl is-enabled event-capture" enabled "$(in_root env SYSTEMD_OFFLINE=1 systemctl is-enabled event-capture)"
    in_root dpkg -s mosquitto-clients python3-venv >/dev/null
    same "the technician's groups" yes \
        "$(in_root id -nG "$TECHNICIAN" | grep -qw "$SERVICE_USER" && echo yes)"
    same "rules.toml's owner and mode" "root:$SERVICE_USER 640" \
        "$(in_root stat -c '%U:%G %a' /etc/event-capture/rules.toml)"
    same "secrets.env's owner and mode" "root:root 600" \
        "$(in_root stat -c '%U:%G %a' /etc/event-capture/secrets.env)"
    in_root /opt/event-capture/venv/bin/python -c \
        'import platform, sys; print(platform.machine(), sys.version); assert platform.machine() == "aarch64"'
}

check_version() {
    local expected
    expected=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$CHECKOUT/capture/__init__.py")
    [ -n "$expected" ] || { echo "no __version__ in capture/__init__.py"; return 1; }
    same "capture --version" "capture $expected" "$(as_service_user capture --version)"
}

check_rules() {
    as_service_user capture check -c /etc/event-capture/rules.toml | tee "$LOGS/check.out"
    expect "$LOGS/check.out" "/etc/event-capture/rules.toml: OK — site 'plant-a'"
}

check_demo() {
    # A bounded run (DEMO_SECONDS after it is up), stopped with Ctrl-C's signal.
    local out=$LOGS/demo.out pid status=0 data=/var/lib/$SERVICE_USER/demo
    start_as_service_user "$out" capture demo --data "$data" --period 2
    pid=$STARTED
    wait_for_text "$out" "demo: Ctrl-C stops" 180 "$pid" || { cat "$out"; return 1; }
    sleep "$DEMO_SECONDS"
    stop_and_wait "$pid" 60 || status=$?
    cat "$out"
    [ "$status" -eq 0 ] || { echo "capture demo exited $status after SIGINT, expected 0"; return 1; }
    expect "$out" "demo: stopped"
    as_service_user /opt/event-capture/venv/bin/python - "$data/snapshots" "$MIN_DEMO_JPEGS" <<'EOF'
"""Every JPEG the demo wrote decodes whole; there are at least as many as asked."""
import sys
from pathlib import Path

from PIL import Image

root, least = Path(sys.argv[1]), int(sys.argv[2])
files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix == ".jpg")
bad = []
for path in files:
    data = path.read_bytes()
    try:
        if not (data.startswith(b"\xff\xd8") and data.rstrip(b"\0").endswith(b"\xff\xd9")):
            raise ValueError("no JPEG start or end marker")
        with Image.open(path) as image:
            image.load()
            if image.format != "JPEG" or min(image.size) < 16:
                raise ValueError(f"{image.format} {image.size}")
    except Exception as exc:
        bad.append(f"{path.relative_to(root)}: {exc}")
print(f"{len(files)} JPEGs under {root}, {len(bad)} invalid")
for line in bad:
    print("invalid:", line)
sys.exit(1 if bad or len(files) < least else 0)
EOF
}

SIMULATOR_PORT=18081

simulated_rules() {
    # One simulated camera, an interval trigger and a gpio trigger, each with a rule.
    cat <<EOF
[service]
site = "arm64-proof"
line = "Line 1"
log_level = "info"
shutdown_grace_s = 5

[storage]
root = "/var/lib/$SERVICE_USER/gpio-check"

[mqtt]
enabled = false

[web]
enabled = false

[cameras.sim_dahua]
vendor = "dahua"
host = "127.0.0.1"
port = $SIMULATOR_PORT
user = "admin"
password = "sim-password"

[triggers.gate_in]
type = "gpio"
pin = 17

[triggers.tick]
type = "interval"
every_s = 2

[[rules]]
name = "part_at_gate"
when = "gate_in"
cameras = ["sim_dahua"]

[[rules]]
name = "tick"
when = "tick"
cameras = ["sim_dahua"]
filename = "tick/{camera}_{time:%H%M%S}_{seq}.jpg"
EOF
}

start_simulator() {
    start_as_service_user "$LOGS/simulator.out" \
        capture simulate --vendor dahua --base-port "$SIMULATOR_PORT"
    SIMULATOR_PID=$STARTED
    wait_for_text "$LOGS/simulator.out" "127.0.0.1:$SIMULATOR_PORT" 120 "$SIMULATOR_PID" ||
        { cat "$LOGS/simulator.out"; return 1; }
    simulated_rules >"$MERGED/var/lib/$SERVICE_USER/sim-rules.toml"
    in_root chown "$SERVICE_USER:" "/var/lib/$SERVICE_USER/sim-rules.toml"
}

stop_simulator() {
    stop_and_wait "$SIMULATOR_PID" 60 || {
        cat "$LOGS/simulator.out"
        echo "capture simulate did not stop cleanly on SIGINT"
        return 1
    }
}

check_snap() {
    start_simulator
    as_service_user capture snap sim_dahua -c sim-rules.toml -o snap.jpg
    as_service_user /opt/event-capture/venv/bin/python -c '
from PIL import Image
with Image.open("snap.jpg") as image:
    image.load()
    print("snap.jpg:", image.format, image.size)
    assert image.format == "JPEG"
'
    stop_simulator
}

check_gpio() {
    # No /dev/gpiochip* here: the gpio trigger says why it cannot start, the
    # interval trigger beside it keeps capturing, and Ctrl-C stops it cleanly.
    local out=$LOGS/run.out pid status=0
    [ -z "$(find "$MERGED/dev" -name 'gpiochip*')" ] || { echo "the root has /dev/gpiochip*"; return 1; }
    start_simulator
    start_as_service_user "$out" capture run -c sim-rules.toml
    pid=$STARTED
    # Triggers start before the service says it has started.
    wait_for_text "$out" "capture.service: started site=arm64-proof" 180 "$pid" || { cat "$out"; return 1; }
    expect "$out" "trigger gate_in (gpio pin 17): cannot start:"
    expect "$out" "; no GPIO pin factory available (not a Raspberry Pi?); on a Pi install python3-lgpio, elsewhere remove or disable this trigger; the other triggers keep running"
    expect "$out" "triggers=1/2"
    local deadline=$((SECONDS + 120))
    until [ -n "$(find "$MERGED/var/lib/$SERVICE_USER/gpio-check/tick" -name '*.jpg' 2>/dev/null)" ]; do
        [ "$SECONDS" -lt "$deadline" ] || { cat "$out"; echo "the interval trigger captured nothing in 120 s"; return 1; }
        kill -0 "$pid" 2>/dev/null || { cat "$out"; echo "capture run exited"; return 1; }
        sleep 1
    done
    stop_and_wait "$pid" 60 || status=$?
    stop_simulator
    cat "$out"
    [ "$status" -eq 0 ] || { echo "capture run exited $status after SIGINT, expected 0"; return 1; }
    local unexpected
    unexpected=$(grep -E 'Traceback|ERROR|CRITICAL' "$out" | grep -v 'gate_in' || true)
    [ -z "$unexpected" ] || { printf 'unexpected errors:\n%s\n' "$unexpected"; return 1; }
}

# COCO-SSD as `capture models install coco-ssd` installed it on this machine (./dev
# does, before this script): converting it needs tf2onnx, which a Pi need not run,
# and the documented air-gapped way is the same copy of the three files.
# Under a plain `sudo`, HOME is root's: the model is then looked for in the cache
# of the user who ran sudo, where ./dev put it.
cache_home=${XDG_CACHE_HOME:-$HOME/.cache}
if [ -z "${CAPTURE_COCO_SSD_DIR:-}" ] && [ -n "${SUDO_USER:-}" ] \
    && [ ! -f "$cache_home/event-capture/models/coco-ssd/model.onnx" ]; then
    sudo_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
    [ -z "$sudo_home" ] || cache_home=$sudo_home/.cache
fi
COCO_SSD_DIR=${CAPTURE_COCO_SSD_DIR:-$cache_home/event-capture/models/coco-ssd}

check_extras() {
    # The optional features whose libraries are compiled code with aarch64 wheels:
    # deploy/install.sh --extras detect,stream, then the real COCO-SSD model through
    # onnxruntime on a drawn stop sign, and PyAV's H.264 and H.265 decoders (RTSP cameras).
    local out=$LOGS/extras.out models=/var/lib/$SERVICE_USER/models/coco-ssd
    local file
    for file in model.onnx labels.txt LICENSE NOTICE; do
        [ -f "$COCO_SSD_DIR/$file" ] ||
            { echo "$COCO_SSD_DIR/$file is missing: run ./dev test-arm64 (it installs COCO-SSD first)"; return 1; }
    done
    EXTRA_ENV=("SUDO_USER=$TECHNICIAN" SYSTEMD_OFFLINE=1)
    DIR=$CHECKOUT_IN_ROOT in_root deploy/install.sh --extras detect,stream >"$out" 2>&1 || {
        cat "$out"
        return 1
    }
    EXTRA_ENV=()
    cat "$out"
    expect "$out" "extras: detect,stream"
    expect "$out" "[install] done"
    mkdir -p "$MERGED$models"
    cp "$COCO_SSD_DIR"/{model.onnx,labels.txt,LICENSE,NOTICE} "$MERGED$models/"
    # The yard picture the tests draw (tests/detect/pictures.py: Pillow only).
    DIR=$CHECKOUT_IN_ROOT in_root /opt/event-capture/venv/bin/python -c '
import sys
sys.path.insert(0, ".")
from tests.detect.pictures import stop_sign
stop_sign().save(sys.argv[1], quality=85)
' "/var/lib/$SERVICE_USER/yard.jpg"
    in_root chown -R "$SERVICE_USER:" "/var/lib/$SERVICE_USER/models" "/var/lib/$SERVICE_USER/yard.jpg"
    as_service_user capture detect yard.jpg --model "$models/model.onnx" \
        --labels "$models/labels.txt" | tee "$LOGS/detect.out"
    expect "$LOGS/detect.out" "yard.jpg: 1920x1080, 1 object(s) scoring >= 0.5"
    expect "$LOGS/detect.out" "stop sign"
    as_service_user /opt/event-capture/venv/bin/python -c '
import platform
import av
decoders = [av.codec.Codec(name, "r").name for name in ("h264", "hevc")]
print(platform.machine(), "PyAV", av.__version__, "decoders", *decoders)
assert platform.machine() == "aarch64"
'
}

# ---------------------------------------------------------------- main

main() {
    preflight
    if [ "${1:-}" != --in-namespace ]; then
        # Every mount below is made in a mount namespace of this run's own: when
        # the run ends, however it ends, the kernel takes them all away.
        exec unshare --mount --propagation private "$0" --in-namespace
    fi
    register_qemu
    mkdir -p "$CACHE/roots"
    exec 9>"$CACHE/lock"
    if ! flock --nonblock 9; then
        log "another arm64 run holds $CACHE/lock; waiting for it (at most 60 minutes)"
        flock --timeout 3600 9 || die "$CACHE/lock still held after 60 minutes"
    fi
    rm -rf "$CACHE/last-failure" # a past run's, which would only mislead now
    MIRROR=$(debian_mirror)
    ROOT_DIR=$CACHE/roots/$SUITE-$ARCH-$(root_key)
    LOGS=$(mktemp -d)
    if [ -d "$ROOT_DIR" ]; then
        ROOT_STATE=cached
        log "reusing the cached $SUITE $ARCH root $ROOT_DIR"
    else
        ROOT_STATE="newly built"
        log "building a $SUITE $ARCH root from $MIRROR into $ROOT_DIR (a few minutes, once)"
        COUNTED=no step build-root build_root
    fi
    RUN=$(mktemp -d "$CACHE/run.XXXXXX")
    MERGED=$RUN/root
    trap 'unmount_run_root; rm -rf "$LOGS"' EXIT
    trap 'exit 130' INT TERM
    COUNTED=no step mount-root mount_run_root
    start_network || die "no network namespace for the service user's steps (unshare --net, ip)"
    COUNTED=no step checkout copy_checkout
    step installer-no-systemd check_installer_refuses_without_systemd
    step installer check_installer
    step capture-version check_version
    step capture-check check_rules
    step capture-demo check_demo
    step capture-snap check_snap
    step gpio-without-chip check_gpio
    step extras-detect-stream check_extras
    summary
}

# On one line with its exit: bash reads a script as it runs, so a checkout that
# changes under a running proof cannot feed it the new file's lines.
{
    main "$@"
    exit
}
