#!/usr/bin/env bash
# Installs everything seam and its local stack need, from nothing, idempotently:
# Java 17+, Maven, the PostgreSQL and MariaDB servers (Debian packages), a Python virtual
# environment in .venv with seam and its development tools, and the transform workers'
# compiled engine of declared pipelines (transforms/native, Rust, built by maturin with cargo from
# crates.io).
set -euo pipefail
cd "$(dirname "$0")/.."

java_ok() {
  command -v java >/dev/null || return 1
  local major
  major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
  [ "${major:-0}" -ge 17 ]
}

packages=()
java_ok || packages+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || packages+=(maven)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || packages+=(postgresql)
{ command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ]; } || packages+=(mariadb-server)
python3 -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)
# The dashboard's browser tests (tests/integration/test_dashboard_browser.py): headless Chromium.
[ -x /usr/bin/chromium ] || packages+=(chromium)
# The Rust toolchain: rustup's (usually ~/.cargo/bin), else Debian's.
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || packages+=(cargo)

if [ ${#packages[@]} -gt 0 ]; then
  echo "installing system packages: ${packages[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "seam needs Python 3.11 or newer")'
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# strict: a tree of links under build/ that type checkers can read (the default editable
# finder is an import hook mypy cannot follow); a new module needs this script run again.
.venv/bin/python -m pip install -q -e '.[dev]' --config-settings editable_mode=strict
# Rebuilt only when its sources changed (cargo is incremental in transforms/native/target).
if ! .venv/bin/python -m pip install -q ./transforms/native; then
  echo "building transforms/native failed: it needs Rust 1.82+ (rustup) and crates.io" >&2
  exit 1
fi
echo "setup done: $(.venv/bin/seam --version)"
