#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), checks lint and types, then runs every test tier.
# The integration tests start a private local stack for the session and stop it at the end;
# the fault tier (tests/faults, last) kills and restarts that stack's parts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/mypy -p seam
# The compiled engine's own checks (its parity with the Python stages is in pytest).
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo fmt --check --manifest-path transforms/native/Cargo.toml
cargo test --quiet --release --manifest-path transforms/native/Cargo.toml
.venv/bin/pytest "$@"
