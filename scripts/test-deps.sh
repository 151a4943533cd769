# Installs (when missing) and points the tests at the real programs they start: curl and jq
# (the capture guide), Chromium and tmux (the case page, `softprobe review`), redis-server and
# moto's S3 server (the shared store), Node.js and the TypeScript stripper (suite hooks).
# Source it (`. scripts/test-deps.sh`): it exports SOFTPROBE_REDIS_SERVER and
# SOFTPROBE_MOTO_SERVER. Debian packages come from apt-get (with sudo when not root); moto
# goes into a virtualenv, $SOFTPROBE_VENV (default /opt/softprobe-venv when root, else
# ~/.cache/softprobe-venv).

export DEBIAN_FRONTEND=noninteractive
sp_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sp_sudo=()
[ "$(id -u)" -eq 0 ] || sp_sudo=(sudo)

sp_need=()
command -v jq >/dev/null 2>&1 || sp_need+=(jq)
command -v curl >/dev/null 2>&1 || sp_need+=(curl)
command -v chromium >/dev/null 2>&1 || sp_need+=(chromium)
command -v tmux >/dev/null 2>&1 || sp_need+=(tmux)
command -v redis-server >/dev/null 2>&1 || sp_need+=(redis-server)
{ python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null; } || sp_need+=(python3-venv)
command -v node >/dev/null 2>&1 || sp_need+=(nodejs)
command -v npm >/dev/null 2>&1 || sp_need+=(npm)
if ((${#sp_need[@]})); then
  echo "==> apt-get install ${sp_need[*]}"
  "${sp_sudo[@]}" apt-get update -qq
  "${sp_sudo[@]}" apt-get install -y -qq "${sp_need[@]}" >/dev/null
fi

if [ -z "${SOFTPROBE_VENV:-}" ]; then
  if [ "$(id -u)" -eq 0 ]; then SOFTPROBE_VENV=/opt/softprobe-venv; else SOFTPROBE_VENV="$HOME/.cache/softprobe-venv"; fi
fi
if [ ! -x "$SOFTPROBE_VENV/bin/moto_server" ]; then
  echo "==> pip install moto[server] into $SOFTPROBE_VENV"
  python3 -m venv "$SOFTPROBE_VENV"
  "$SOFTPROBE_VENV/bin/pip" install -q 'moto[server]'
fi
export SOFTPROBE_MOTO_SERVER="$SOFTPROBE_VENV/bin/moto_server"
SOFTPROBE_REDIS_SERVER="$(command -v redis-server)"
export SOFTPROBE_REDIS_SERVER

echo "==> npm ci --prefix tests (the type stripper for TypeScript hooks on Node 20)"
npm ci --prefix "$sp_root/tests" --no-audit --no-fund >/dev/null
