# Sourced by infra/test.sh: the console's browser tests need Debian's Chromium and its
# WebDriver (chromedriver), and axe-core (npm) to check each page's accessibility. Installs what
# is missing and exports where they are; fails loudly when something cannot be had.

AXE_DIR=.axe-core
AXE_VERSION=4.11.0

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "==> installing Debian's chromium and chromium-driver (the console's browser tests)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
    || { echo "$0: could not install chromium and chromium-driver (apt-get, as root)" >&2; exit 1; }
fi
if [ ! -f "$AXE_DIR/node_modules/axe-core/axe.min.js" ]; then
  command -v npm >/dev/null || { echo "$0: npm is needed to fetch axe-core" >&2; exit 1; }
  echo "==> installing axe-core@$AXE_VERSION from the npm registry into $AXE_DIR"
  npm install --prefix "$AXE_DIR" --no-audit --no-fund --silent "axe-core@$AXE_VERSION" \
    || { echo "$0: could not install axe-core from the npm registry" >&2; exit 1; }
fi
export CHROMIUM_BIN="$(command -v chromium)" CHROMEDRIVER_BIN="$(command -v chromedriver)"
export AXE_JS="$PWD/$AXE_DIR/node_modules/axe-core/axe.min.js"
