#!/usr/bin/env bash
# Headless Chromium for the report rendering test (tests/eval/test_report_html.py), idempotently.
# Debian's `chromium` package; a no-op (well under a second) when a chromium binary is on PATH.
# Needs root (or sudo) for apt-get; without either it says so and leaves the test to skip.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"
else echo "install_chromium: not root; install Debian's chromium package to run the HTML report test" >&2; exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_chromium: no apt-get here; install chromium to run the HTML report test" >&2; exit 0
fi
echo "==> installing chromium (headless report check)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "==> $(chromium --version)"
