#!/usr/bin/env bash
# Every benchmark in one command; rewrites BENCHMARKS.md from what this run measured.
#   bash infra/bench/run.sh            (RUNS=20 cold starts per binary by default)
# Needs: cargo, python3 (moto; cargo-lambda and zig from PyPI into .venv-bench), wrk
# (Debian: apt-get install wrk). Nothing here is part of the test command: no timed assertions.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-20}

command -v wrk >/dev/null || { echo "run.sh: wrk is needed for the throughput figures (Debian: apt-get install wrk)" >&2; exit 1; }
if [ ! -x .venv-bench/bin/cargo-lambda ]; then
  echo "==> installing cargo-lambda and zig into .venv-bench"
  python3 -m venv .venv-bench && .venv-bench/bin/pip install --quiet cargo-lambda ziglang \
    || { echo "run.sh: could not install cargo-lambda from PyPI" >&2; exit 1; }
fi
export PATH="$PWD/.venv-bench/bin:$PATH"
. infra/moto.sh
mkdir -p target
. infra/dynamodb-local.sh    # the import benchmark writes into AWS's DynamoDB Local

FUNCTIONS=(payments generate-token notifications status revoke stats telegram-webhook side-effects scheduled-jobs console floor)
packages=()
for f in "${FUNCTIONS[@]}"; do packages+=(-p "$f"); done

echo "==> Lambda packages (cargo lambda build --release, x86_64) and their zips"
cargo lambda build --release --locked "${packages[@]}"
cargo lambda build --release --locked --output-format zip --lambda-dir target/lambda-zip "${packages[@]}"
for f in "${FUNCTIONS[@]}"; do cp "target/lambda-zip/$f/bootstrap.zip" "target/lambda/$f/bootstrap.zip"; done

echo "==> local host and benchmark programs (cargo build --release)"
cargo build --release --locked --bin telegate --example coldstart --example warm --example sweep --example sweep-dynamodb --example import --example expiry-day --example console

mkdir -p target/bench-logs
echo "==> cold starts ($RUNS per binary)"
# The functions get the stand-in's endpoint only (moto): DynamoDB Local is for the import and sweep benchmarks.
env -u AWS_ENDPOINT_URL_DYNAMODB target/release/examples/coldstart target/lambda "$RUNS" > target/bench-logs/coldstart.md
echo "==> warm path"
target/release/examples/warm target/release/telegate > target/bench-logs/warm.md
echo "==> sweep scaling"
target/release/examples/sweep > target/bench-logs/sweep.md
echo "==> sweep scaling on DynamoDB Local"
target/release/examples/sweep-dynamodb > target/bench-logs/sweep-dynamodb.md
echo "==> import from the Django system (1k, 10k, 100k members; DynamoDB Local and SQLite)"
target/release/examples/import > target/bench-logs/import.md

echo "==> an expiry day at Telegram's limit (10k members; the local host, then DynamoDB Local + SQS with 3 consumers)"
target/release/examples/expiry-day > target/bench-logs/expiry-day.md

echo "==> the console's pages with 100k members (the local host, SQLite)"
target/release/examples/console > target/bench-logs/console.md

python3 infra/bench/report.py target/bench-logs "$RUNS" > target/bench-logs/BENCHMARKS.md
mv target/bench-logs/BENCHMARKS.md BENCHMARKS.md
echo "==> BENCHMARKS.md written"
