#!/usr/bin/env bash
# Installs what is needed, starts the sandbox hubs and runs the main job end to end:
# mirror the sandbox's sample model from the Hugging Face kind to the ModelScope kind, then verify.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec python -m gitmirror.demo "$@"
