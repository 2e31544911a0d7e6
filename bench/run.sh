#!/usr/bin/env bash
# signet's benchmark (issue 7): builds signet and examples/bench.rs in release, starts a real
# docker-registry on a free loopback port (access log on), runs every measurement, prints one
# table and writes it, with the machine it ran on, to bench/RESULTS.md (generated: this script
# overwrites it; never edit it by hand).
#
#   bench/run.sh                  # everything, ~10 minutes on 2 cores after the build
#   BENCH_ARGS="--many 2000" bench/run.sh   # extra arguments for `bench run` (see --help)
#   bench/run.sh soak             # only the soak: 60 s of concurrent load while signet's RSS is
#                                 # sampled every second; rewrites only the soak section of
#                                 # RESULTS.md (a full run keeps that section)
#   SOAK_ARGS="--seconds 30" bench/run.sh soak   # extra arguments for `bench soak`
#   bench/run.sh audit            # `signet audit` of 5,000 pods over 200 images: time and
#                                 # registry requests (printed only; AUDIT_ARGS for `bench audit`)
#   SIGNET_FIXTURES=DIR bench/run.sh cue   # CUE evaluation time per corpus policy, and CUE next
#                                 # to Rego for the same checks (printed only, no registry;
#                                 # CUE_ARGS for `bench cue`, e.g. "--iterations 1000")
#
# Needs: cargo, and root or sudo for `apt-get install docker-registry` when it is missing.
# All traffic stays on 127.0.0.1.
set -euo pipefail

MODE="${1:-all}"
case "$MODE" in
    all | soak | audit | cue) ;;
    *)
        echo "usage: bench/run.sh [soak|audit|cue]" >&2
        exit 2
        ;;
esac

cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

if [ "$MODE" = cue ]; then
    # In-process only: no registry, no signet binary. Prints; writes nothing.
    : "${SIGNET_FIXTURES:?set SIGNET_FIXTURES to the fixtures directory (holds cue-policies/)}"
    echo "building the bench tool (release)" >&2
    cargo build --release --example bench >&2
    # shellcheck disable=SC2086 # CUE_ARGS is a list of arguments
    exec "$CARGO_TARGET_DIR/release/examples/bench" cue --fixtures "$SIGNET_FIXTURES" ${CUE_ARGS:-}
fi

# --- Tools (idempotent: only what is missing).
if ! command -v docker-registry >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    echo "installing docker-registry (apt)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker-registry >/dev/null
    # The package's own service is not needed; ours runs on a free port.
    $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

# --- Build.
echo "building signet and the bench tool (release)" >&2
cargo build --release --bin signet --example bench >&2
SIGNET="$CARGO_TARGET_DIR/release/signet"
BENCH="$CARGO_TARGET_DIR/release/examples/bench"

# --- Scratch space and a registry like tests/it/support/registry.rs (plain HTTP, access log on).
WORK=$(mktemp -d /tmp/signet-bench.XXXXXX)
REGISTRY_PID=""
cleanup() {
    if [ -n "$REGISTRY_PID" ]; then
        kill "$REGISTRY_PID" 2>/dev/null || true
        wait "$REGISTRY_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ulimit -n 8192 2>/dev/null || true

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 20000))
}

start_registry() {
    PORT=$(free_port)
    mkdir -p "$WORK/registry"
    cat >"$WORK/registry/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $WORK/registry/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$PORT
  secret: signet-bench-secret
EOF
    : >"$WORK/registry/registry.log"
    docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/registry.log" 2>&1 &
    REGISTRY_PID=$!
    for _ in $(seq 1 150); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$REGISTRY_PID" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    kill "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
    REGISTRY_PID=""
    return 1
}

started=""
for _ in 1 2 3; do
    if start_registry; then
        started=yes
        break
    fi
done
if [ -z "$started" ]; then
    echo "docker-registry did not start:" >&2
    cat "$WORK/registry/registry.log" >&2
    exit 1
fi
echo "docker-registry on 127.0.0.1:$PORT" >&2

# --- Measure.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if [ "$MODE" = audit ]; then
    # Prints only: an audit's time and registry requests (AUDIT_ARGS: --pods, --images).
    # shellcheck disable=SC2086 # AUDIT_ARGS is a list of arguments
    "$BENCH" audit --signet "$SIGNET" --registry "127.0.0.1:$PORT" \
        --registry-log "$WORK/registry/registry.log" --work "$WORK" ${AUDIT_ARGS:-}
    exit 0
fi
if [ "$MODE" = soak ]; then
    # shellcheck disable=SC2086 # SOAK_ARGS is a list of arguments
    "$BENCH" soak --signet "$SIGNET" --registry "127.0.0.1:$PORT" \
        --registry-log "$WORK/registry/registry.log" --work "$WORK" ${SOAK_ARGS:-} >"$WORK/table.md"
else
    # shellcheck disable=SC2086 # BENCH_ARGS is a list of arguments
    "$BENCH" run --signet "$SIGNET" --registry "127.0.0.1:$PORT" \
        --registry-log "$WORK/registry/registry.log" --work "$WORK" ${BENCH_ARGS:-} >"$WORK/table.md"
fi
cat "$WORK/table.md"

# --- Record.
RESULTS="$ROOT/bench/RESULTS.md"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
# The soak section sits between these markers at the end of RESULTS.md.
SOAK_BEGIN='<!-- soak: generated by bench/run.sh soak -->'
SOAK_END='<!-- /soak -->'
if [ "$MODE" = soak ]; then
    {
        if [ -f "$RESULTS" ] && grep -qxF "$SOAK_BEGIN" "$RESULTS"; then
            awk -v m="$SOAK_BEGIN" '$0 == m { exit } { print }' "$RESULTS"
        elif [ -f "$RESULTS" ]; then
            cat "$RESULTS"
            echo
        else
            echo "# signet benchmark results"
            echo
        fi
        echo "$SOAK_BEGIN"
        echo "## Soak: memory under concurrent load"
        echo
        echo "Generated by \`bench/run.sh soak\`; how it is measured: [README.md](README.md#soak)."
        echo
        echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src/ modified)')"
        echo "- nproc: $(nproc), CPU: ${cpu:-unknown}, memory: $mem"
        echo "- load average (1/5/15 min) before the run: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "- arguments: ${SOAK_ARGS:-(defaults)}"
        echo
        cat "$WORK/table.md"
        echo "$SOAK_END"
    } >"$WORK/results.md"
    mv "$WORK/results.md" "$RESULTS"
    echo "wrote the soak section of bench/RESULTS.md" >&2
    exit 0
fi
{
    echo "# signet benchmark results"
    echo
    echo "Generated by \`bench/run.sh\`; do not edit by hand (the script overwrites this file)."
    echo "What each figure means and how it is measured: [README.md](README.md)."
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src/ modified)')"
    echo "- uname -a: \`$(uname -a)\`"
    echo "- nproc: $(nproc)"
    echo "- CPU: ${cpu:-unknown}"
    echo "- memory: $mem"
    echo "- load average (1/5/15 min) before the run: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- registry: $(docker-registry --version 2>/dev/null | head -1 || echo docker-registry), filesystem storage on loopback"
    echo "- arguments: ${BENCH_ARGS:-(defaults)}"
    echo
    cat "$WORK/table.md"
    # Keep the last soak (its own mode writes it).
    if [ -f "$RESULTS" ] && grep -qxF "$SOAK_BEGIN" "$RESULTS"; then
        echo
        awk -v m="$SOAK_BEGIN" '$0 == m { p = 1 } p' "$RESULTS"
    fi
} >"$WORK/results.md"
mv "$WORK/results.md" "$RESULTS"
echo "wrote bench/RESULTS.md" >&2
