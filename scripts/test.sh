#!/usr/bin/env bash
# All of rbuild's tests: installs what they need, then runs every test of the crate.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo test --no-fail-fast
