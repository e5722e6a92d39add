#!/usr/bin/env bash
# The Debian packages the tests and the demo need beside the virtualenv: the shared libraries OpenCV
# (pulled in by ultralytics) loads, and Chromium for the events browser test (Playwright drives the
# system browser; it never downloads one). Installs only what is missing: as root in a container,
# through sudo on a CI runner (GitHub's runners run as a sudo-capable user).
set -euo pipefail

if ldconfig -p | grep -q 'libGL.so.1' && ldconfig -p | grep -q 'libgthread-2.0.so.0' && command -v chromium >/dev/null; then
    exit 0
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgl1 libglib2.0-0 chromium
