#!/usr/bin/env bash
# Installs, builds and runs the main job: generation on the default model
# ($STRATA_MODEL, else ../shared/models/stories260K.gguf, else a generated demo model).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
exec ./build/strata run -p "${1:-Once upon a time}" -n "${2:-128}"
