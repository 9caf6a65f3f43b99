#!/usr/bin/env python3
"""Day 1: what must be right in the AWS account before the first deploy of an environment.

    python3 infra/preflight.py prod            # reads samconfig.toml's [prod.deploy.parameters]

Checks, each answered ✓ (right), ✗ (fix it before deploying: the exit code is 1) or ? (could not be
checked, with why; a warning):
- the secret (SecretName) exists, is JSON, has bot_token (as BotFather gives it), webhook_secret
  (1 to 256 of A-Z a-z 0-9 _ -, what Telegram accepts for secret_token) and, unless JwksUrl is
  given, jwt_hs256_secret (at least 32 characters);
- the SES identity of MailFrom (the address or its domain) is verified, and whether the account is
  still in the SES sandbox (mail then reaches verified addresses only);
- the account's Lambda concurrency covers the template's reserved and maximum concurrency;
- AlarmEmail is set (else alarms tell nobody) and AllowedOrigins is not `*`;
- the console's identity provider is given whole or not at all, and ConsoleUrl is an https address;
- ChannelId is a channel's id, Offers is JSON, and an offer sold in Stars has PaySupportContact.

Needs boto3 (the SAM CLI's Python has it) and read access to the account.
"""

import argparse
import json
import os
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import deploy  # noqa: E402

TEMPLATE = pathlib.Path(__file__).parent.parent / "template.yaml"


def concurrency_needed(template_text):
    """What the template reserves, plus the most its event sources run at once."""
    reserved = sum(int(n) for n in re.findall(r"ReservedConcurrentExecutions:\s*(\d+)", template_text))
    maximum = sum(int(n) for n in re.findall(r"MaximumConcurrency:\s*(\d+)", template_text))
    return reserved, maximum


def why(error):
    """An error's first line (an HTML error page is not read out)."""
    return (str(error).splitlines() or [type(error).__name__])[0]


def checks(values, params, clients):
    """Yields (state, what) per check: state is "ok", "fix" or "unknown"."""
    origins = values.get("AllowedOrigins", "*")
    yield ("fix" if "*" in origins.split(",") else "ok", f"AllowedOrigins is {origins!r}")
    yield ("ok" if values.get("AlarmEmail") else "fix", "AlarmEmail is set (else the alarms tell nobody)")
    channel = values.get("ChannelId", "")
    yield ("ok" if re.fullmatch(r"-100\d+", channel) else "fix", f"ChannelId {channel!r} is a channel's id (-100…)")
    try:
        offers = json.loads(values["Offers"]) if values.get("Offers") else {}
        stars = any(isinstance(o, dict) and "stars" in o for o in offers.values())
        yield ("fix" if stars and not values.get("PaySupportContact") else "ok", "Offers parse; Stars offers have PaySupportContact")
    except (ValueError, AttributeError) as e:
        yield ("fix", f"Offers is not JSON offers: {e}")
    oidc = [n for n in ("ConsoleOidcClientId", "ConsoleOidcAuthorizeUrl", "ConsoleOidcTokenUrl") if values.get(n)]
    yield ("ok" if len(oidc) in (0, 3) else "fix",
           "the console's identity provider: ConsoleOidcClientId, ConsoleOidcAuthorizeUrl and ConsoleOidcTokenUrl, all three or none")
    console = values.get("ConsoleUrl", "")
    yield ("ok" if not console or re.fullmatch(r"https://[^/\s]+", console.rstrip("/")) else "fix",
           f"ConsoleUrl {console!r} is an https address without a path (Telegram opens Mini Apps over https only)")

    name = values.get("SecretName", "telegate")
    try:
        raw = clients["secretsmanager"].get_secret_value(SecretId=name)["SecretString"]
        secret = json.loads(raw)
        if not isinstance(secret, dict):
            raise ValueError("not a JSON object")
        yield ("ok" if re.fullmatch(r"\d+:[A-Za-z0-9_-]{30,}", secret.get("bot_token", "")) else "fix",
               f"secret {name}: bot_token as BotFather gives it (<digits>:<35 characters>)")
        yield ("ok" if re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret.get("webhook_secret", "")) else "fix",
               f"secret {name}: webhook_secret of 1 to 256 A-Z a-z 0-9 _ - (what Telegram accepts)")
        if not values.get("JwksUrl"):
            yield ("ok" if len(secret.get("jwt_hs256_secret", "")) >= 32 else "fix",
                   f"secret {name}: jwt_hs256_secret of at least 32 characters (or give JwksUrl)")
    except clients["secretsmanager"].exceptions.ResourceNotFoundException:
        yield ("fix", f"secret {name} exists in Secrets Manager")
    except ValueError as e:
        yield ("fix", f"secret {name} is a JSON object: {e}")
    except Exception as e:  # noqa: BLE001 — any other answer: say it, do not guess
        yield ("unknown", f"secret {name}: could not check ({why(e)})")

    sender = values.get("MailFrom", "")
    verified = None
    for identity in (sender, sender.partition("@")[2]):
        try:
            found = clients["sesv2"].get_email_identity(EmailIdentity=identity)
            verified = verified or found.get("VerificationStatus") == "SUCCESS" or found.get("VerifiedForSendingStatus")
        except clients["sesv2"].exceptions.NotFoundException:
            verified = verified or False
        except Exception as e:  # noqa: BLE001
            yield ("unknown", f"SES identity of {sender}: could not check ({why(e)})")
            break
    if verified is not None:
        yield ("ok" if verified else "fix", f"SES identity of {sender} (the address or its domain) is verified")
    try:
        production = clients["sesv2"].get_account().get("ProductionAccessEnabled")
        yield ("ok" if production else "unknown",
               "SES production access" if production else "SES is in the sandbox: mail reaches verified addresses only (ask AWS for production access)")
    except Exception as e:  # noqa: BLE001
        yield ("unknown", f"SES sandbox: could not check ({why(e)})")

    reserved, maximum = concurrency_needed(TEMPLATE.read_text())
    try:
        limit = clients["lambda"].get_account_settings()["AccountLimit"]
        available = limit["UnreservedConcurrentExecutions"]
        yield ("ok" if available >= reserved + maximum + 1 else "fix",
               f"Lambda concurrency: {available} unreserved for {reserved} reserved and {maximum} at most on the queue, plus the webhook and the API")
    except Exception as e:  # noqa: BLE001
        yield ("unknown", f"Lambda concurrency: could not check ({why(e)})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env", help="the environment in the SAM config file (dev, prod…)")
    parser.add_argument("--config-file", default="samconfig.toml")
    args = parser.parse_args()
    import boto3

    params, values = deploy.deploy_parameters(args.config_file, args.env)
    region = params.get("region") or os.environ.get("AWS_REGION")
    clients = {name: boto3.client(name, region_name=region) for name in ("secretsmanager", "sesv2", "lambda")}
    marks = {"ok": "✓", "fix": "✗", "unknown": "?"}
    failed = 0
    for state, what in checks(values, params, clients):
        print(f"{marks[state]} {what}")
        failed += state == "fix"
    if failed:
        print(f"{failed} to fix before deploying {args.env}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
