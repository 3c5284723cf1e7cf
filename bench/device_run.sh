#!/usr/bin/env bash
# On the GPU machine, from the repository root: install the carried wheels, run the suite.
#   bash bench/device_run.sh [device_suite arguments]      (bench/README.md: the `run` call)
set -uo pipefail
python=${PYTHON:-python3}
"$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || { echo "no wheels in .whl/: run bench/device_prep.sh and carry .whl" >&2; exit 1; }
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
# one section's process holds the GPU at a time: give it 92% of the memory, not JAX's 75%
# (the batch-64 training step: 117 GiB of temporaries as XLA:CPU assigns them, 51 GiB in all
# as the GPU compiler does, cross-compiled without the GPU: bench/cross_compile.py)
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
exec "$python" -m bench.device_suite --reference reference "$@"
