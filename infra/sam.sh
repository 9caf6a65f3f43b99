# Sourced by infra/test.sh after infra/moto.sh: builds the functions as they are deployed, with
# SAM itself (`sam build`: cargo-lambda, arm64, the release profile), lints the template with
# `sam validate --lint`, then runs every built `bootstrap` with the template's environment under
# the Lambda Runtime API emulator (arm64 runs under qemu-user). Installs what it needs (PyPI:
# aws-sam-cli, cargo-lambda, ziglang; rustup: the aarch64 target; Debian: qemu-user and the arm64
# C library) and fails loudly when it cannot. Nothing is skipped.

VENV_SAM=.venv-sam
SAM_VERSION=1.170.0
CARGO_LAMBDA_VERSION=1.9.2
ZIG_VERSION=0.17.1

if [ ! -x "$VENV_SAM/bin/sam" ] || [ ! -x "$VENV_SAM/bin/cargo-lambda" ]; then
  echo "==> installing aws-sam-cli==$SAM_VERSION, cargo-lambda==$CARGO_LAMBDA_VERSION and ziglang==$ZIG_VERSION into $VENV_SAM"
  python3 -m venv "$VENV_SAM" || { echo "$0: python3 -m venv failed" >&2; exit 1; }
  "$VENV_SAM/bin/pip" install --quiet "aws-sam-cli==$SAM_VERSION" "cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIG_VERSION" \
    || { echo "$0: could not install aws-sam-cli, cargo-lambda and ziglang from PyPI" >&2; exit 1; }
fi
if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
  echo "==> rustup target add aarch64-unknown-linux-gnu (the deployed architecture)"
  rustup target add aarch64-unknown-linux-gnu || { echo "$0: could not add the aarch64 target" >&2; exit 1; }
fi
if ! command -v qemu-aarch64 >/dev/null || [ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; then
  echo "==> installing qemu-user and libc6-arm64-cross (Debian), to run the arm64 functions here"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user libc6-arm64-cross >/dev/null; } \
    || { echo "$0: could not install qemu-user and libc6-arm64-cross (apt-get, as root)" >&2; exit 1; }
fi

# SAM reads the region from the environment (moto.sh sets one); it calls no AWS service here.
"$VENV_SAM/bin/sam" validate --lint --template-file template.yaml
# cargo-lambda needs zig (from the venv) on PATH to link arm64.
# `sam build` builds one function after the other (`cargo lambda build --release --arm64 --bin <name>`
# in each function's folder, into the shared target/), and each binary's LTO runs on one core. Built
# first in one cargo run, the template's binaries link side by side on every core; `sam build` then
# finds each one fresh and only copies it (the same flags, features and target directory).
packages=$(sed -n 's/^ *Binary: *//p' template.yaml | sed 's/^/-p /' | tr '\n' ' ')
# shellcheck disable=SC2086 # one word per flag
PATH="$PWD/$VENV_SAM/bin:$PATH" CARGO_TARGET_DIR="$PWD/target" "$VENV_SAM/bin/cargo-lambda" lambda build --release --arm64 $packages
PATH="$PWD/$VENV_SAM/bin:$PATH" "$VENV_SAM/bin/sam" build --template-file template.yaml --build-dir .aws-sam/build
# Every change reaches the running code: the SAM translator on what was built, with the revision
# infra/deploy.py derives (Secrets Manager on the stand-in).
echo "==> the SAM translator: a new setting, a rotated secret or new code publishes new versions"
"$VENV_SAM/bin/python" infra/check_revision.py
echo "==> infra/preflight.py: each wrong setting of an environment named before the first deploy"
"$VENV_SAM/bin/python" infra/check_preflight.py

# The template as CloudFormation reads it (intrinsics as {"Ref": …}), for the check below.
"$VENV/bin/python" - <<'PY'
import json
from cfnlint.decode import cfn_yaml
json.dump(cfn_yaml.load("template.yaml"), open("target/template.json", "w"), default=str)
PY
# --workspace: the features of the test passes, so the SDK is not compiled again.
cargo build --workspace --locked --example deploy-check
target/debug/examples/deploy-check target/template.json .aws-sam/build
