#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run) and as the README tells a newcomer to run it.
# It installs nothing globally and fails loudly when something it needs is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "test.sh: cargo is not installed (https://rustup.rs)" >&2; exit 1; }

echo "==> formatting"
cargo fmt --all -- --check

echo "==> lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> tests (unit, end-to-end over HTTP against the fake Telegram Bot API, SQLite)"
cargo test --workspace --locked
