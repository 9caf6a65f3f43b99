"""infra/preflight.py against the local AWS stand-in: an environment with everything wrong is told
each thing to fix (exit 1), the same environment put right passes (exit 0), and what the stand-in
cannot answer (SES's account, Lambda's account settings) is said to be unchecked, never passed.
Run by infra/sam.sh with the SAM CLI's Python (boto3), after moto.sh.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import boto3

os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "eu-west-1"))
SUFFIX = str(os.getpid())


def fail(message):
    print(f"check_preflight: {message}", file=sys.stderr)
    sys.exit(1)


def preflight(work, overrides):
    config = pathlib.Path(work) / "samconfig.toml"
    lines = ["version = 0.1", "[t.deploy.parameters]", 'stack_name = "telegate-t"']
    lines.append(f"parameter_overrides = {json.dumps(overrides)}")
    config.write_text("\n".join(lines) + "\n")
    run = subprocess.run(
        [sys.executable, "infra/preflight.py", "t", "--config-file", str(config)], capture_output=True, text=True
    )
    return run.returncode, run.stdout + run.stderr


def main():
    secrets = boto3.client("secretsmanager")
    sender = f"bot-{SUFFIX}@example.com"
    with tempfile.TemporaryDirectory() as work:
        wrong = [
            "ChannelId=12345",
            f"SecretName=telegate-preflight-{SUFFIX}",
            f"MailFrom={sender}",
            'Offers={"monthly": {"name": "Monthly", "days": 30, "stars": 250}}',
            "ConsoleOidcClientId=console-client",
            "ConsoleUrl=http://console.example.com",
        ]
        code, out = preflight(work, wrong)
        expected = [
            "✗ AllowedOrigins is '*'",
            "✗ AlarmEmail is set",
            "✗ ChannelId '12345'",
            "✗ Offers parse; Stars offers have PaySupportContact",
            f"✗ secret telegate-preflight-{SUFFIX} exists",
            f"✗ SES identity of {sender}",
            "✗ the console's identity provider: ConsoleOidcClientId, ConsoleOidcAuthorizeUrl and ConsoleOidcTokenUrl, all three or none",
            "✗ ConsoleUrl 'http://console.example.com' is an https address",
        ]
        missing = [e for e in expected if e not in out]
        if code != 1 or missing:
            fail(f"everything wrong: exit {code}, not told {missing}:\n{out}")

        secrets.create_secret(
            Name=f"telegate-preflight-{SUFFIX}",
            SecretString=json.dumps({"bot_token": "123:short", "webhook_secret": "not allowed!", "jwt_hs256_secret": "short"}),
        )
        code, out = preflight(work, wrong)
        for e in ["✗ secret telegate-preflight-", "bot_token as BotFather gives it", "webhook_secret of 1 to 256", "jwt_hs256_secret of at least 32"]:
            if e not in out:
                fail(f"a bad secret: not told {e!r}:\n{out}")

        secrets.put_secret_value(
            SecretId=f"telegate-preflight-{SUFFIX}",
            SecretString=json.dumps(
                {"bot_token": "123456789:" + "A" * 35, "webhook_secret": "a-Secret_1", "jwt_hs256_secret": "k" * 32}
            ),
        )
        boto3.client("sesv2").create_email_identity(EmailIdentity=sender)
        right = [
            "ChannelId=-1001234567890",
            f"SecretName=telegate-preflight-{SUFFIX}",
            f"MailFrom={sender}",
            'Offers={"monthly": {"name": "Monthly", "days": 30, "stars": 250}}',
            "PaySupportContact=@support",
            "AlarmEmail=ops@example.com",
            "AllowedOrigins=https://app.example.com",
            "ConsoleUrl=https://console.example.com",
        ]
        code, out = preflight(work, right)
        if code != 0 or "✗" in out:
            fail(f"everything right: exit {code}:\n{out}")
        for e in ["✓ secret telegate-preflight-", f"✓ SES identity of {sender}", "? SES sandbox: could not check", "? Lambda concurrency: could not check"]:
            if e not in out:
                fail(f"everything right: not told {e!r}:\n{out}")
    print("  preflight: each wrong setting named (exit 1); put right, it passes; what the stand-in cannot answer is said unchecked")


if __name__ == "__main__":
    main()
