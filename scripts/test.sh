#!/usr/bin/env bash
# The project's test command (see README): installs the test tools, then checks formatting,
# lints, and runs every test. the test run comes last so its summary closes the output.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

"$REPO/scripts/install-test-deps.sh"

TOOLS_DIR="${SIGNET_TOOLS:-$HOME/.cache/signet-tools}"
export SIGNET_PYTHON="${SIGNET_PYTHON:-$TOOLS_DIR/venv/bin/python}"
# Shared fixtures and tools live beside the repo; tests read them from these paths.
if [ -z "${SIGNET_FIXTURES:-}" ] && [ -d "$REPO/../shared/fixtures" ]; then
    SIGNET_FIXTURES="$(cd "$REPO/../shared/fixtures" && pwd)"
    export SIGNET_FIXTURES
fi
if [ -z "${SIGNET_SHARED_TOOLS:-}" ] && [ -d "$REPO/../shared/tools" ]; then
    SIGNET_SHARED_TOOLS="$(cd "$REPO/../shared/tools" && pwd)"
    export SIGNET_SHARED_TOOLS
fi

# The deployment checks (Helm chart, manifests, image build) run as part of the tests.
export SIGNET_DEPLOY_CHECKS="${SIGNET_DEPLOY_CHECKS:-1}"

echo "== cargo fmt --check" >&2
cargo fmt --all --check
echo "== cargo clippy --workspace --all-targets -- -D warnings" >&2
cargo clippy --quiet --workspace --all-targets -- -D warnings
echo "== scripts/deny.sh (cargo deny: licenses, bans, sources, advisories)" >&2
"$REPO/scripts/deny.sh"
# The short coverage-guided fuzzing run of the registry client against hostile responses and
# of the CUE evaluator on arbitrary policies (building every fuzz target, so none drifts from
# the code). SIGNET_FUZZ_SHORT=0 skips it; SIGNET_FUZZ=1 runs every target instead, from
# tests/it/fuzz_short.rs.
if [ "${SIGNET_FUZZ_SHORT:-1}" = 1 ] && [ "${SIGNET_FUZZ:-}" != 1 ]; then
    echo "== scripts/fuzz.sh registry_client cue_policy (${FUZZ_SECONDS:-20} s each)" >&2
    FUZZ_SECONDS="${FUZZ_SECONDS:-20}" "$REPO/scripts/fuzz.sh" registry_client cue_policy
fi
# nextest closes with one summary line for every test binary; plain `cargo test` would
# close on the (empty) doc-test run instead.
if cargo nextest --version >/dev/null 2>&1; then
    echo "== cargo nextest run" >&2
    exec cargo nextest run --no-fail-fast --workspace --all-targets
fi
echo "== cargo test" >&2
exec cargo test --no-fail-fast --workspace --all-targets
