#!/usr/bin/env bash
# Every test of the workspace, on a fresh machine: installs what the tests start (see
# scripts/test-deps.sh), then `cargo test --workspace` with any extra arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/test-deps.sh
exec cargo test --workspace "$@"
