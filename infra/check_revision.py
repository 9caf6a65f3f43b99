"""Every change reaches the running code: the SAM translator (as CloudFormation runs it for
`sam deploy`) on the template `sam build` made, with the revision infra/deploy.py derives.

- For each parameter a function's environment reads, a new value changes the versions of the
  functions that read it (with a bare `sam deploy`, it does not: shown too, as the reason).
- A rotated secret (a new current version in Secrets Manager) changes every version.
- A rebuild with other code changes every version; the same settings, secret and build give the
  same versions (nothing is published for nothing).
- deploy.py's config keeps every override of the environment and adds the revision; its dry run
  names the revision.

Run by infra/sam.sh after `sam build`, with the SAM CLI's Python, against the local AWS stand-in
(Secrets Manager). Exits non-zero on the first broken promise.
"""

import copy
import json
import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib

import boto3
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import deploy  # noqa: E402

BUILD = pathlib.Path(os.environ.get("SAM_BUILD_DIR", ".aws-sam/build"))
FUNCTION = "AWS::Serverless::Function"


class NoManagedPolicies:
    """The template names no managed policy: nothing to look up in IAM."""

    def load(self):
        return {}


def fail(message):
    print(f"check_revision: {message}", file=sys.stderr)
    sys.exit(1)


def packaged(build):
    """The built template as `sam package` leaves it: each function's code in S3, named by content."""
    template = yaml_parse((build / "template.yaml").read_text())
    for resource in template["Resources"].values():
        if resource["Type"] == FUNCTION:
            code = resource["Properties"]["CodeUri"]
            resource["Properties"]["CodeUri"] = f"s3://artifacts/{deploy.build_digest(build / code)}"
    return template


def translate(template, params):
    """Each function's version logical id, and each function's environment as CloudFormation gets it."""
    resources = transform(copy.deepcopy(template), params, NoManagedPolicies())["Resources"]
    versions, environments = {}, {}
    for name, resource in resources.items():
        if resource["Type"] == "AWS::Lambda::Version":
            versions[resource["Properties"]["FunctionName"]["Ref"]] = name
        if resource["Type"] == "AWS::Lambda::Function":
            environments[name] = resource["Properties"].get("Environment", {})
    return versions, environments


def parameters_read(value, names):
    """The template parameters a value refers to (`Ref`, or `${Name}` in a `Fn::Sub`)."""
    found = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and inner in names:
                found.add(inner)
            elif key == "Fn::Sub":
                text = inner if isinstance(inner, str) else inner[0]
                found |= set(re.findall(r"\$\{([A-Za-z0-9]+)\}", text)) & names
                if not isinstance(inner, str):
                    found |= parameters_read(inner[1], names)
            else:
                found |= parameters_read(inner, names)
    elif isinstance(value, list):
        for inner in value:
            found |= parameters_read(inner, names)
    return found


def main():
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    template = packaged(BUILD)
    names = set(template["Parameters"])
    # The translator and boto3 read the region from AWS_DEFAULT_REGION; moto.sh sets AWS_REGION.
    os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "eu-west-1"))
    secrets = boto3.client("secretsmanager")
    secret = f"telegate-revision-{os.getpid()}"
    secrets.create_secret(Name=secret, SecretString=json.dumps({"bot_token": "1:a", "webhook_secret": "w"}))
    base = {
        "BotUsername": "telegate_bot",
        "ChannelId": "-1001234567890",
        "ChannelName": "telegate",
        "MailFrom": "bot@example.com",
        "SecretName": secret,
        "Offers": '{"monthly": {"name": "Monthly", "days": 30, "stars": 250, "renewing": true}}',
        "PaySupportContact": "@support",
        "JwtIssuer": "https://issuer.example.com",
        "JwtAudience": "telegate",
        "AllowedOrigins": "https://app.example.com",
        "Stage": "prod",
    }
    build = deploy.build_digest(BUILD)

    def deployed(values, secret_id=None, digest=build):
        rev = deploy.revision(values, secret_id or deploy.secret_version(secret), digest)
        return rev, translate(template, {**values, "ConfigRevision": rev})

    rev, (versions, environments) = deployed(base)
    if deployed(base)[1][0] != versions:
        fail("the same settings, secret and build gave other versions")
    readers = {}
    for function, environment in environments.items():
        for name in parameters_read(environment, names):
            readers.setdefault(name, set()).add(function)
    if not {"Offers", "ChannelId"} <= set(readers):
        fail(f"the environments read {sorted(readers)}: expected Offers and ChannelId among them")
    # The functions read their secrets when they start, from the stack's copies of SecretName's
    # keys: a copy is updated (its value read again) when its properties change, so each must
    # name the revision, which a rotation changes.
    # (A secret the stack generates, as the console's session key, is no copy: nothing to rotate.)
    copies = {
        n
        for n, r in template["Resources"].items()
        if r["Type"] == "AWS::SecretsManager::Secret" and "GenerateSecretString" not in r["Properties"]
    }
    for copy_name in sorted(copies):
        read = parameters_read(template["Resources"][copy_name]["Properties"], names)
        if not {"SecretName", "ConfigRevision"} <= read:
            fail(f"{copy_name} reads {sorted(read)}: a rotation would not reach it")
    named = set(re.findall(r"'Ref': '([A-Za-z0-9]+)'", str(environments))) & copies
    if named != copies:
        fail(f"the environments name the secrets {sorted(named)}, the stack copies {sorted(copies)}")
    print(f"  {len(copies)} copies of the secret, each named by the functions that use it, each updated by a new revision")

    bare = translate(template, {**base, "ConfigRevision": ""})[0]
    for name, functions in sorted(readers.items()):
        changed = {**base, name: base.get(name, "x") + "9"}
        after = deployed(changed)[1][0]
        stale = sorted(f for f in functions if after[f] == versions[f])
        if stale:
            fail(f"a new {name} leaves the version of {stale} unchanged: `live` would keep the old value")
        print(f"  {name}: read by {len(functions)} function(s), a new value publishes each a new version")
    offers_bare = translate(template, {**base, "Offers": "{}", "ConfigRevision": ""})[0]
    payments = "PaymentsFunction"
    if offers_bare[payments] != bare[payments]:
        fail("a bare `sam deploy` now names versions from parameter values: ConfigRevision may be unneeded")
    print(f"  without the revision (bare sam deploy), a new Offers keeps {bare[payments]}: the reason for it")

    before = deploy.secret_version(secret)
    secrets.put_secret_value(SecretId=secret, SecretString=json.dumps({"bot_token": "2:b", "webhook_secret": "w"}))
    if deploy.secret_version(secret) == before:
        fail("put_secret_value did not make a new current version")
    rotated = deployed(base)[1][0]
    if any(rotated[f] == versions[f] for f in versions):
        fail("a rotated secret leaves a version unchanged")
    print(f"  a rotated secret: all {len(versions)} functions get a new version")

    with tempfile.TemporaryDirectory() as copy_dir:
        rebuilt = pathlib.Path(copy_dir) / "build"
        shutil.copytree(BUILD, rebuilt)
        bootstrap = next(rebuilt.rglob("bootstrap"))
        bootstrap.write_bytes(bootstrap.read_bytes() + b"\0")
        if deploy.build_digest(rebuilt) == build:
            fail("a changed function leaves the build digest unchanged")
    print("  a rebuild with other code: a new revision")

    # deploy.py's own config: every override of the environment, and the revision.
    example = pathlib.Path("samconfig.toml")
    params, values = deploy.deploy_parameters(example, "dev")
    written = tomllib.loads(deploy.config_with_revision("dev", params, rev))["dev"]["deploy"]["parameters"]
    expected = params["parameter_overrides"] + [f"ConfigRevision={rev}"]
    if written["parameter_overrides"] != expected or written["stack_name"] != params["stack_name"]:
        fail(f"deploy.py's config lost an override: {written}")
    try:
        secrets.create_secret(Name=values["SecretName"], SecretString="{}")
    except secrets.exceptions.ResourceExistsException:
        pass
    with tempfile.TemporaryDirectory() as work:
        config = pathlib.Path(work) / "samconfig.toml"
        shutil.copy(example, config)
        run = subprocess.run(
            [sys.executable, "infra/deploy.py", "dev", "--dry-run", "--config-file", str(config), "--build-dir", str(BUILD)],
            capture_output=True,
            text=True,
        )
        written = (pathlib.Path(work) / "samconfig.deploy.toml").read_text() if run.returncode == 0 else ""
    if run.returncode != 0 or not re.search(r"^ConfigRevision=[0-9a-f]{16}$", run.stdout, re.M):
        fail(f"deploy.py --dry-run: {run.returncode} {run.stdout} {run.stderr}")
    if "ConfigRevision=" not in written or "sam deploy --config-file" not in run.stdout:
        fail(f"deploy.py --dry-run wrote {written!r} and would run {run.stdout!r}")
    print("  deploy.py: every override kept, the revision added; its dry run names it")


if __name__ == "__main__":
    main()
