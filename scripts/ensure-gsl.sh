#!/usr/bin/env bash
# Makes sure GSL's headers and pkg-config file are present, installing Debian's libgsl-dev when they are not.
# Called by `make run` and `make test` (and so by .ci/run) before anything is built.
# OpenBLAS is installed too when MINIDL_BLAS=openblas asks for it (see README, "Choosing the BLAS").
set -euo pipefail

need=()
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists gsl; then need+=(libgsl-dev); fi
if [ "${MINIDL_BLAS:-gsl}" = "openblas" ] && ! pkg-config --exists openblas 2>/dev/null; then
  need+=(libopenblas-dev)
fi
[ ${#need[@]} -eq 0 ] && exit 0

echo "ensure-gsl: installing ${need[*]} (apt-get)" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "ensure-gsl: need root or sudo to install ${need[*]}; install them and run again" >&2; exit 2
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
pkg-config --exists gsl || { echo "ensure-gsl: libgsl-dev installed but pkg-config still cannot find gsl" >&2; exit 2; }
