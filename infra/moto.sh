# Sourced by infra/test.sh and infra/bench/run.sh: installs moto (the local AWS stand-in) into
# a virtualenv in the checkout if missing, starts it on a free loopback port, stops it on exit,
# and exports the variables the AWS SDK reads. Fails loudly: nothing is ever skipped.

VENV=.venv-moto
MOTO_VERSION=5.2.5
CFN_LINT_VERSION=1.58.0

command -v python3 >/dev/null || { echo "$0: python3 is needed for the local AWS stand-in (moto)" >&2; exit 1; }
if [ ! -x "$VENV/bin/moto_server" ] || [ ! -x "$VENV/bin/cfn-lint" ]; then
  echo "==> installing moto[server]==$MOTO_VERSION (the local AWS stand-in) and cfn-lint==$CFN_LINT_VERSION into $VENV"
  python3 -m venv "$VENV" || { echo "$0: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
  # Two installs: resolved together, pip backtracks for minutes over their shared dependencies.
  "$VENV/bin/pip" install --quiet "moto[server]==$MOTO_VERSION" || { echo "$0: could not install moto from PyPI" >&2; exit 1; }
  "$VENV/bin/pip" install --quiet "cfn-lint==$CFN_LINT_VERSION" || { echo "$0: could not install cfn-lint from PyPI" >&2; exit 1; }
fi

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p target
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" > target/moto.log 2>&1 &
MOTO_PID=$!
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
ready() { python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/moto-api/', timeout=1)" 2>/dev/null; }
for _ in $(seq 1 150); do
  ready && break
  kill -0 "$MOTO_PID" 2>/dev/null || { echo "$0: moto exited at start-up:" >&2; cat target/moto.log >&2; exit 1; }
  sleep 0.2
done
ready || { echo "$0: moto did not answer on 127.0.0.1:$PORT within 30 s:" >&2; cat target/moto.log >&2; exit 1; }
echo "==> local AWS stand-in (moto $MOTO_VERSION) on 127.0.0.1:$PORT, pid $MOTO_PID"

# The SDK reads these: every AWS call goes to the stand-in, never to an AWS account.
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=eu-west-1
unset AWS_PROFILE AWS_SESSION_TOKEN
