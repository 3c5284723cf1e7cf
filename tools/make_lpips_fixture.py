"""Write tests/fixtures/lpips/lpips_random.npz with the `lpips` package (run where torch is).

    python tools/make_lpips_fixture.py

Weights are random but reproducible without torch: `random_lpips_state_dicts(seed)` (also
used by the test) draws them with numpy; the `lpips` package's LPIPS(net="vgg") is loaded
with them and its distances on random inputs are stored.
"""
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from tests.lpips_weights import random_lpips_state_dicts  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests/fixtures/lpips/lpips_random.npz"


def main():
    import lpips
    import torch
    vgg_sd, lin_sd = random_lpips_state_dicts(0)
    net = lpips.LPIPS(net="vgg", pretrained=False, pnet_rand=True, verbose=False).eval()
    own = net.state_dict()
    for key in own:
        if key.startswith("net.slice"):
            index = int(key.split(".")[2])
            own[key] = torch.from_numpy(vgg_sd[f"features.{index}.{key.split('.')[-1]}"])
        elif key.startswith("lins."):  # the package also lists lin0..lin4 as lins.0..lins.4
            own[key] = torch.from_numpy(lin_sd[f"lin{key.split('.')[1]}.model.1.weight"])
        elif key.startswith("lin"):
            own[key] = torch.from_numpy(lin_sd[key])
    net.load_state_dict(own)
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (2, 3, 64, 64)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.3, x.shape), -1, 1).astype(np.float32)
    with torch.no_grad():
        d = net(torch.from_numpy(x), torch.from_numpy(y)).numpy().reshape(-1)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez(OUT, x=x, y=y, distance=d)
    print(f"wrote {OUT}: {d}")


if __name__ == "__main__":
    main()
