#!/usr/bin/env bash
# Installs what is needed (git-lfs, a virtualenv with gitmirror) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec python -m pytest -n 2 --timeout=600 "$@"
