#!/usr/bin/env bash
# A short fuzz smoke: builds every target and runs each for SECONDS (default 10) from the
# seeded corpus; exits non-zero if any target crashes. Not part of .ci/run: building the fuzz
# crate from scratch with nightly takes far longer than the 4 minutes CI can spare (see
# RELIABILITY.md).
set -euo pipefail
cd "$(dirname "$0")"
./seed.sh >/dev/null
table="$(./campaign.sh "${1:-10}")"
echo "$table"
! grep -q crash <<<"$table"
