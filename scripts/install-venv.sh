#!/bin/sh
# Installs gitmirror (not editable) into a virtualenv of its own:
#
#   scripts/install-venv.sh PREFIX WHAT
#
# WHAT is anything pip installs: a built wheel (dist/gitmirror-*.whl), a checkout (.) or a git URL.
# PREFIX/bin/gitmirror is then the absolute path for cron and systemd; nothing outside PREFIX is
# touched, so it works where the system Python refuses `pip install` (Debian 12 and later).
# The Dockerfile installs with this script, and tests/test_install.py runs it on a fresh wheel.
set -eu
if [ "$#" -ne 2 ]; then
  echo "usage: $0 PREFIX WHAT   (e.g. $0 /opt/gitmirror dist/gitmirror-0.1.0-py3-none-any.whl)" >&2
  exit 2
fi
prefix=$1
what=$2
"${PYTHON:-python3}" -m venv "$prefix"
"$prefix/bin/python" -m pip install --quiet --no-input "$what"
"$prefix/bin/gitmirror" --version
