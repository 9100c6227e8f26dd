#!/usr/bin/env bash
# Install headless Chromium and ChromeDriver (Debian packages) for the HTML check in
# tests/test_book.py, unless they are already there.
set -euo pipefail
command -v chromium >/dev/null && command -v chromedriver >/dev/null && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium chromium-driver
