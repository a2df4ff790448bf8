#!/usr/bin/env bash
# Installs what aqbert needs to build and run on Debian/Ubuntu. Idempotent; sourced by the
# other scripts. Uses sudo for apt when not root. The Swift 6 toolchain itself is not in
# Debian's archive: it must already be on PATH (or at /opt/swift/usr/bin).
set -euo pipefail

aq_log() { printf '[aqbert] %s\n' "$*" >&2; }

aq_sudo() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        aq_log "need root (or sudo) to run: $*"; return 1; fi
}

aq_apt_install() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    aq_log "installing ${missing[*]}"
    aq_sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive aq_sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

aq_setup() {
    if ! command -v swift >/dev/null && [ -x /opt/swift/usr/bin/swift ]; then
        export PATH="/opt/swift/usr/bin:$PATH"
    fi
    if ! command -v swift >/dev/null; then
        aq_log "Swift 6 toolchain not found: install it (swift.org) and put swift on PATH"
        return 1
    fi
    aq_apt_install libopenblas-dev pkg-config libopenmpi-dev openmpi-bin
    if ! command -v python3 >/dev/null; then aq_apt_install python3; fi
    if ! python3 -m pip --version >/dev/null 2>&1; then aq_apt_install python3-pip; fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then aq_setup; fi
