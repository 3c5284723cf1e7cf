#!/usr/bin/env bash
# Prepare, on this machine, what the device suite carries to the GPU machine (bench/README.md):
#   reference/    the PyTorch reference's models/, ldm/ and configs/ from a checkout (git-ignored)
#   .whl/         pure-Python wheels the GPU image lacks: ml_collections (configs), lpips (the
#                 reference's training loss); their other needs (absl-py, PyYAML, torchvision,
#                 scipy, tqdm) are on the image
#   device_data/  folder/: 10 RealSet65 crops of seeded sizes, 64-192 px, for the folder
#                 section (git-ignored; the GPU machine has no ../shared/data)
#     bash bench/device_prep.sh [/path/to/ResShift checkout, default /work/ref]
# The crops need a Python with numpy and Pillow: $PYTHON, default .venv/bin/python.
set -euo pipefail
ref=${1:-/work/ref}
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
[ -f "$ref/models/unet.py" ] || { echo "$ref: not a ResShift checkout (no models/unet.py)" >&2; exit 1; }
"$python" -c "import numpy, PIL" 2>/dev/null || { echo "$python: no numpy and Pillow there (set PYTHON)" >&2; exit 1; }
rm -rf reference
mkdir reference
for d in models ldm configs; do cp -r "$ref/$d" reference/; done
find reference -name __pycache__ -prune -exec rm -rf {} +
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux2014_x86_64 -d .whl ml_collections==1.1.0 lpips==0.1.4
rm -rf device_data/folder
"$python" bench/folder_bench.py --write_folder device_data/folder --crops 10 --min_size 64 \
    --max_size 192 --seed 0
du -sh reference .whl device_data
