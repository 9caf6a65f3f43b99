#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run) and as the README tells a newcomer to run it.
# It installs what it needs into the checkout (a Python virtualenv for moto, the local AWS
# stand-in), starts and stops it, and fails loudly when something cannot be had. Nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "test.sh: cargo is not installed (https://rustup.rs)" >&2; exit 1; }
. infra/moto.sh
. infra/browser.sh

phase() { echo "==> $1 (at ${SECONDS}s)"; }

phase "formatting"
cargo fmt --all -- --check

phase "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The binaries as `cargo run` builds them: without the tests' dev-dependency features.
cargo check --workspace --bins --locked
"$VENV/bin/cfn-lint" template.yaml
. infra/checkov.sh

phase "tests (unit; end to end over HTTP against the fake Telegram Bot API; SQLite; AWS adapters on moto; Lambda events)"
# The shared pace's test needs DynamoDB's atomic updates, which moto lacks: it runs in the next pass.
cargo test --workspace --locked -- --skip aws_backend::functions_share_one_pace_through_the_table

phase "the DynamoDB adapter again, on AWS's DynamoDB Local (SQS and SES stay on moto)"
. infra/dynamodb-local.sh
# An empty moto for this pass: the tests read back what SES sent, and the first pass sent mail too.
python3 -c "import urllib.request; urllib.request.urlopen(urllib.request.Request('$AWS_ENDPOINT_URL/moto-api/reset', method='POST'), timeout=5)"
# --workspace, as in the first pass: the same features, so nothing is compiled again.
# The tests that reach DynamoDB, chosen by module path in the one test binary.
cargo test --workspace --locked --test all -- store_contract:: races:: aws_backend:: lambda_events:: ops:: dynamodb_faults:: integrity:: import:: \
  previous_release:: model::random_money_sequences_keep_the_channel_equal_to_the_ledger_on_dynamodb
tables=$(ddb_tables)
[ "$tables" -gt 0 ] || { echo "test.sh: the DynamoDB tests left no table in DynamoDB Local: they did not run there" >&2; exit 1; }
echo "==> $tables tables were created in DynamoDB Local by that pass"
phase "sam validate --lint, sam build (arm64), and every built function run with the template's environment"
# An empty moto again: the check provisions its own resources and reads back what it sent.
python3 -c "import urllib.request; urllib.request.urlopen(urllib.request.Request('$AWS_ENDPOINT_URL/moto-api/reset', method='POST'), timeout=5)"
unset AWS_ENDPOINT_URL_DYNAMODB
. infra/sam.sh
phase "done"
