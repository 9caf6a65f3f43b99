#!/usr/bin/env python3
"""Deploys one environment of telegate so that every change reaches the running code.

Every event invokes the functions' `live` alias, and SAM names the version behind it from the
template as written: a new value of a parameter (`Offers`, `ChannelId`, `SecretName`…) or a secret
rotated in Secrets Manager would publish no new version, and `live` would keep the old settings.
This script derives `ConfigRevision` from everything a function's environment and code depend
on (the parameter values, the secret's current version, the built functions and template) and
deploys with it; the template names every version from it (`AutoPublishCodeSha256`), so any change
publishes new versions, and nothing changed publishes none.

    sam build
    python3 infra/deploy.py prod                 # sam deploy --config-env prod, with the revision
    python3 infra/deploy.py prod --dry-run       # prints the revision and the sam deploy command

It reads `samconfig.toml` (`--config-file`), needs boto3 (the SAM CLI's own Python has it) and
credentials for the account. A bare `sam deploy` still works: it leaves `ConfigRevision` empty,
and SAM names versions from the code and the template as written, as before (settings and
secrets changed alone do not reach `live`).
"""

import argparse
import hashlib
import json
import os
import pathlib
import shlex
import subprocess
import sys
import tomllib


def deploy_parameters(config_file, env):
    """The `[<env>.deploy.parameters]` table of the SAM config file, and its overrides as a dict."""
    config = tomllib.loads(pathlib.Path(config_file).read_text())
    params = config.get(env, {}).get("deploy", {}).get("parameters")
    if params is None:
        sys.exit(f"deploy.py: {config_file} has no [{env}.deploy.parameters]")
    raw = params.get("parameter_overrides", [])
    values = {}
    for item in raw if isinstance(raw, list) else shlex.split(raw):
        key, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"deploy.py: parameter_overrides entry {item!r} is not Key=Value")
        values[key] = value
    values.pop("ConfigRevision", None)
    return params, values


def secret_version(secret_name, region=None):
    """The version id of the secret's current value (`AWSCURRENT`): a rotation changes it."""
    import boto3

    region = region or os.environ.get("AWS_REGION")
    described = boto3.client("secretsmanager", region_name=region).describe_secret(SecretId=secret_name)
    for version, stages in described.get("VersionIdsToStages", {}).items():
        if "AWSCURRENT" in stages:
            return version
    sys.exit(f"deploy.py: the secret {secret_name} has no current version")


def build_digest(build_dir):
    """One digest of what `sam build` made: every function's files and the built template."""
    root = pathlib.Path(build_dir)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if not any(p.name == "bootstrap" for p in files):
        sys.exit(f"deploy.py: no built function in {build_dir}: run `sam build` first")
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def revision(values, secret, build):
    """16 hex digits that change when any parameter value, the secret's version or the build does."""
    digest = hashlib.sha256()
    for key in sorted(values):
        digest.update(f"{key}={values[key]}\0".encode())
    digest.update(f"secret={secret}\0build={build}".encode())
    return digest.hexdigest()[:16]


def config_with_revision(env, params, rev):
    """A SAM config file holding `env`'s deploy parameters plus `ConfigRevision=<rev>` (JSON strings
    are TOML basic strings)."""
    params = dict(params)
    raw = params.get("parameter_overrides", [])
    if isinstance(raw, list):
        params["parameter_overrides"] = [o for o in raw if not o.startswith("ConfigRevision=")] + [f"ConfigRevision={rev}"]
    else:
        kept = [o for o in shlex.split(raw) if not o.startswith("ConfigRevision=")]
        params["parameter_overrides"] = " ".join(shlex.quote(o) for o in kept + [f"ConfigRevision={rev}"])
    lines = ["version = 0.1", f"[{env}.deploy.parameters]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in params.items()]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env", help="the environment in the SAM config file (dev, prod…)")
    parser.add_argument("--config-file", default="samconfig.toml")
    parser.add_argument("--build-dir", default=".aws-sam/build")
    parser.add_argument("--dry-run", action="store_true", help="print the revision and the command, deploy nothing")
    args, rest = parser.parse_known_args()
    params, values = deploy_parameters(args.config_file, args.env)
    secret = secret_version(values.get("SecretName", "telegate"), params.get("region"))
    rev = revision(values, secret, build_digest(args.build_dir))
    # Beside the config file it copies (SAM reads a config file's paths from where the file is).
    config = pathlib.Path(args.config_file).with_name("samconfig.deploy.toml")
    config.write_text(config_with_revision(args.env, params, rev))
    command = ["sam", "deploy", "--config-file", str(config), "--config-env", args.env, *rest]
    print(f"ConfigRevision={rev}")
    print(" ".join(shlex.quote(c) for c in command))
    if not args.dry_run:
        sys.exit(subprocess.call(command))


if __name__ == "__main__":
    main()
