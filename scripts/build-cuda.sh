#!/usr/bin/env bash
# Builds OpenSOC with the `cuda` feature (GPU training: `opensoc train --device cuda`).
#
# The CUDA 13.0 compiler, headers and libraries come from NVIDIA's wheels on PyPI,
# installed into a virtual environment outside the repository, so no system toolkit is
# needed. Linking the `opensoc` binary also needs the driver's libcuda, which only a
# machine with the NVIDIA driver has; elsewhere the script builds the libraries (every
# CUDA kernel compiled, every crate type-checked against the CUDA backend) and says so.
#
#   scripts/build-cuda.sh                 # CUDA_COMPUTE_CAP defaults to the GPU's, else 90
#   CUDA_VENV=DIR CUDA_COMPUTE_CAP=80 scripts/build-cuda.sh
#
# Run the binary with LD_LIBRARY_PATH="$CUDA_VENV/lib/python3*/site-packages/nvidia/cu13/lib".
set -euo pipefail

venv="${CUDA_VENV:-${TMPDIR:-/tmp}/opensoc-cuda}"
if [[ ! -x "$venv/bin/pip" ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet \
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
    nvidia-cuda-cccl==13.0.85 nvidia-cuda-runtime==13.0.96 nvidia-cuda-nvrtc==13.0.88 \
    nvidia-cublas nvidia-curand
root="$(echo "$venv"/lib/python3*/site-packages/nvidia/cu13)"
[[ -x "$root/bin/nvcc" ]] || { echo "no nvcc under $root" >&2; exit 1; }

# The wheels ship versioned libraries only; the linker looks for the plain names.
for lib in cublas cublasLt nvrtc curand cudart; do
    so="$(ls "$root/lib/lib$lib.so."* 2>/dev/null | head -n 1 || true)"
    [[ -n "$so" ]] && ln -sf "$(basename "$so")" "$root/lib/lib$lib.so"
done

if [[ -z "${CUDA_COMPUTE_CAP:-}" ]]; then
    cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '.' || true)"
    export CUDA_COMPUTE_CAP="${cap:-90}"
fi
export PATH="$root/bin:$PATH" CUDA_ROOT="$root" CUDA_PATH="$root"
echo "CUDA $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), compute capability $CUDA_COMPUTE_CAP"

driver="$(ldconfig -p 2>/dev/null | sed -n 's/.*libcuda\.so\.1 .*=> //p' | head -n 1 || true)"
cd "$(dirname "$0")/.."
# Its own target directory: the CPU build stays as it is.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/cuda}"
if [[ -n "$driver" ]]; then
    ln -sf "$driver" "$root/lib/libcuda.so"
    cargo build --release -p opensoc --features cuda
    echo "built $CARGO_TARGET_DIR/release/opensoc with CUDA (driver: $driver)"
else
    cargo build --release -p opensoc-train --features cuda
    echo "built the libraries with CUDA; no NVIDIA driver (libcuda.so.1) here to link the binary"
fi
