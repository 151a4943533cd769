#!/usr/bin/env bash
# Runs every benchmark row of BENCHMARKS.md in one release run on this machine and writes the
# table to target/bench/results.md, with the machine description beside it.
# Installs wrk, nginx and redis-server (apt-get) when they are missing; everything binds loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
{ command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } || need+=(nginx)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if ((${#need[@]})); then
  echo "==> apt-get install ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "==> cargo build --release -p softprobe-bench"
cargo build --release --locked -p softprobe-bench

out=target/bench
mkdir -p "$out"
{
  echo "## Machine"
  echo
  echo "- nproc: $(nproc)"
  echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "- memory: $(free -h | awk '/^Mem:/ {print $2 " total, " $7 " available"}')"
  echo "- kernel: $(uname -r)"
  echo "- rustc: $(rustc --version)"
  echo "- wrk: $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), nginx: $( (nginx -v 2>&1 || /usr/sbin/nginx -v 2>&1) | cut -d/ -f2)"
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$out/machine.md"
cat "$out/machine.md"

echo "==> target/release/softprobe-bench $*"
./target/release/softprobe-bench --out "$out/results.md" "$@"
echo
echo "wrote $out/machine.md and $out/results.md"
