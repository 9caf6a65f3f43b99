# Sourced by infra/test.sh: checkov, pinned, in its own virtualenv (its dependencies would
# fight moto's), on template.yaml with the findings accepted in .checkov.yaml (reasons in
# SECURITY.md). Any other finding fails the test command. Fails loudly when it cannot be installed.

VENV_CHECKOV=.venv-checkov
CHECKOV_VERSION=3.3.30

if [ ! -x "$VENV_CHECKOV/bin/checkov" ] || ! "$VENV_CHECKOV/bin/checkov" --version | grep -qx "$CHECKOV_VERSION"; then
  echo "==> installing checkov==$CHECKOV_VERSION into $VENV_CHECKOV"
  python3 -m venv "$VENV_CHECKOV" || { echo "$0: python3 -m venv failed" >&2; exit 1; }
  "$VENV_CHECKOV/bin/pip" install --quiet "checkov==$CHECKOV_VERSION" \
    || { echo "$0: could not install checkov from PyPI" >&2; exit 1; }
fi
# Offline: no download of Prisma Cloud's guidelines (the checks are in the package).
BC_SKIP_MAPPING=TRUE "$VENV_CHECKOV/bin/checkov" --config-file .checkov.yaml
