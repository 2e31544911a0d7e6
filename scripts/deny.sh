#!/usr/bin/env bash
# cargo deny over the dependency tree (deny.toml): licenses, bans (wildcards denied,
# duplicate versions listed), sources; then advisories, whose RustSec database is cloned from
# GitHub: when that cannot be reached, this says so and goes on instead of failing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! cargo deny --version >/dev/null 2>&1; then
    echo "installing cargo-deny" >&2
    cargo install --locked --quiet cargo-deny@0.20.2
fi
cargo deny --log-level error check licenses bans sources
duplicates=$(cargo deny check bans 2>&1 | grep -c '^warning\[duplicate\]' || true)
echo "cargo deny: licenses, bans and sources ok; $duplicates crates in two versions (deny.toml says why they are allowed)" >&2

set +e
advisories=$(timeout 180 cargo deny check advisories 2>&1)
status=$?
set -e
if grep -q "failed to fetch advisory database" <<<"$advisories"; then
    echo "cargo deny advisories: SKIPPED, the RustSec database cannot be fetched from this machine" >&2
elif [ "$status" -ne 0 ]; then
    echo "$advisories" >&2
    exit "$status"
else
    echo "cargo deny advisories: ok" >&2
fi
