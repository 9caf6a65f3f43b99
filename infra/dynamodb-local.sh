# Sourced by infra/test.sh after infra/moto.sh: starts AWS's own DynamoDB Local (the jar shipped in
# the npm package amplify-dynamodb-simulator, on the machine's Java) on a free loopback port and
# exports AWS_ENDPOINT_URL_DYNAMODB, so that the SDK sends DynamoDB calls there and every other
# service to moto. Fails loudly when it cannot.

DDB_DIR=.dynamodb-local
DDB_PACKAGE=amplify-dynamodb-simulator@2.9.30
DDB_JAR_DIR="$DDB_DIR/node_modules/amplify-dynamodb-simulator/emulator"

command -v java >/dev/null || { echo "$0: java (17+) is needed for DynamoDB Local" >&2; exit 1; }
if [ ! -f "$DDB_JAR_DIR/DynamoDBLocal.jar" ]; then
  command -v npm >/dev/null || { echo "$0: npm is needed to fetch DynamoDB Local ($DDB_PACKAGE)" >&2; exit 1; }
  echo "==> installing DynamoDB Local ($DDB_PACKAGE from the npm registry) into $DDB_DIR"
  # Three tries: a registry hiccup (seen once in CI) is not a reason to fail the whole run.
  installed=0
  for try in 1 2 3; do
    npm install --prefix "$DDB_DIR" --no-audit --no-fund --silent "$DDB_PACKAGE" && { installed=1; break; }
    echo "==> npm install failed (try $try of 3)" >&2
    sleep 5
  done
  [ "$installed" = 1 ] || { echo "$0: could not install $DDB_PACKAGE from the npm registry" >&2; exit 1; }
fi

DDB_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$DDB_JAR_DIR" && exec java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar -inMemory -port "$DDB_PORT") \
  > target/dynamodb-local.log 2>&1 &
DDB_PID=$!
trap 'kill "$MOTO_PID" "$DDB_PID" 2>/dev/null || true' EXIT

# How many tables DynamoDB Local holds (it accepts any signature); fails if it does not answer.
ddb_tables() {
  python3 - "$DDB_PORT" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(
    f"http://127.0.0.1:{sys.argv[1]}/", data=b"{}", method="POST",
    headers={"X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0",
             "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/eu-west-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0"})
print(len(json.load(urllib.request.urlopen(req, timeout=1))["TableNames"]))
PY
}
for _ in $(seq 1 150); do
  ddb_tables >/dev/null 2>&1 && break
  kill -0 "$DDB_PID" 2>/dev/null || { echo "$0: DynamoDB Local exited at start-up:" >&2; cat target/dynamodb-local.log >&2; exit 1; }
  sleep 0.2
done
ddb_tables >/dev/null 2>&1 || { echo "$0: DynamoDB Local did not answer on 127.0.0.1:$DDB_PORT within 30 s:" >&2; cat target/dynamodb-local.log >&2; exit 1; }
echo "==> DynamoDB Local on 127.0.0.1:$DDB_PORT, pid $DDB_PID"
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DDB_PORT"
