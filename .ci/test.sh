#!/usr/bin/env bash
# The README's test command (`make test`) runs this inside the project's virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" MCMIA_QUIET=1 MPLBACKEND=Agg
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export MCMIA_STORE="$scratch/store" MCMIA_WEIGHTS="$scratch/weights"
start=$(date +%s)
python -m pytest tests -q -p no:cacheprovider
# the same unit tests on torch's other CPU kernel family, so that a threshold holding on one machine type only
# fails here, wherever this runs (machines of this kind differ: AVX2, AVX-512, AMX)
ATEN_CPU_CAPABILITY=avx2 python -m pytest tests -q -p no:cacheprovider
mcmia grid quickstart --profile smoke  # the two-step use: the grid on a local Ray, then the notebooks
python -m pytest --nbval-lax --nbval-current-env -q -p no:cacheprovider notebooks/
unset MCMIA_STORE MCMIA_WEIGHTS
mcmia book --no-execute
# the reader's check: every page in headless Chromium from a local server (Debian's browser and driver)
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
python tests/check_book_in_browser.py
echo "test command finished in $(( $(date +%s) - start )) s"
