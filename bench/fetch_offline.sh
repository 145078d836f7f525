#!/usr/bin/env bash
# bench/fetch_offline.sh: downloads, on a machine that reaches the package
# registries, what bench/gpu_check.sh installs on the GPU machine, which
# reaches nothing: the anchors' wheels into bench/wheels/ and statebench's
# build dependencies, as Debian 12 packages, into bench/debs/ (about 18 MB
# together; git ignores both folders: name them in the device tool's carry).
# usage: bash bench/fetch_offline.sh        (from anywhere; as root for apt)
set -euo pipefail
cd "$(dirname "$0")/.."

# fla-core holds flash-linear-attention's ops without its models (it needs
# torch >= 2.7, triton >= 3.3 and einops, all on the GPU image); flashrnn
# compiles its CUDA kernels at first use with the image's nvcc and ninja.
# mamba_ssm is on PyPI only as source that builds its CUDA extension for
# every architecture (far past the GPU check's minutes), so it is left out:
# compare_gpu.py then skips the mamba anchor with a note. A mamba_ssm wheel
# built elsewhere for the image's Python and torch, dropped into
# bench/wheels/, is installed and used.
WHEELS="fla-core==0.6.0 flashrnn==1.0.8"
mkdir -p bench/wheels
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation py \
    -d bench/wheels $WHEELS

# The C libraries statebench links (Makefile DEB_PKGS) and what they need
# beyond a CUDA image's base system. gpu_check.sh unpacks them under /tmp
# only when the GPU machine lacks them, and points the build there.
DEBS="libopenblas0-openmp libopenblas-openmp-dev libgfortran5 libquadmath0 libyaml-0-2 libyaml-dev
      libxxhash0 libxxhash-dev libsqlite3-0 libsqlite3-dev libcriterion3 libcriterion-dev libgit2-1.5
      libnanomsg5 libhttp-parser2.9 libmbedcrypto7 libmbedtls14 libmbedx509-1 libssh2-1"
mkdir -p bench/debs
(cd bench/debs && apt-get download -q $DEBS 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
missing=""
for p in $DEBS; do ls bench/debs/"${p}"_*.deb >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    echo "fetch_offline: apt-get download did not fetch:$missing (run apt-get update first?)" >&2
    exit 1
fi
du -sh bench/wheels bench/debs
