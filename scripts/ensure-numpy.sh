#!/usr/bin/env bash
# Makes sure python3 can import NumPy, which the example engine (examples/engines/numpy_engine.py) and the
# tests that run it need: installs it with pip when `python3 -c "import numpy"` fails, else with apt-get
# (python3-numpy) when pip is missing. Called by `make test` (and so by .ci/run), like ensure-gsl.sh.
set -euo pipefail

command -v python3 >/dev/null 2>&1 || { echo "ensure-numpy: python3 is missing; install python3 and run again" >&2; exit 2; }
python3 -c "import numpy" >/dev/null 2>&1 && exit 0

echo "ensure-numpy: installing NumPy" >&2
# pip first; Debian's python3 refuses plain `pip install` (PEP 668, externally managed), so the user site
# with --break-system-packages is the second try; apt-get is the last.
if python3 -m pip --version >/dev/null 2>&1 && { python3 -m pip install --quiet numpy >&2 ||
     python3 -m pip install --quiet --user --break-system-packages numpy >&2; }; then
  :
else
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 && sudo="sudo" || { echo "ensure-numpy: need pip, or root/sudo for apt-get" >&2; exit 2; }
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq --no-install-recommends python3-numpy >&2
fi
python3 -c "import numpy" || { echo "ensure-numpy: NumPy installed but python3 still cannot import it" >&2; exit 2; }
