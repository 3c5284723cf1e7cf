"""Reproducible random LPIPS-VGG weights (numpy), shared by the fixture writer and the test."""
import numpy as np

# torchvision VGG16 `features` conv indices and widths per LPIPS slice (torch-free copy of
# resshift_jax.models.lpips.SLICES, so the fixture writer runs without flax)
SLICES = (((0, 64), (2, 64)), ((5, 128), (7, 128)), ((10, 256), (12, 256), (14, 256)),
          ((17, 512), (19, 512), (21, 512)), ((24, 512), (26, 512), (28, 512)))


def random_lpips_state_dicts(seed: int):
    """(torchvision-style VGG16 `features.*` dict, lpips `lin*.model.1.weight` dict)."""
    rng = np.random.default_rng(seed)
    vgg, cin = {}, 3
    for convs in SLICES:
        for index, cout in convs:
            std = np.sqrt(2.0 / (9 * cin))
            vgg[f"features.{index}.weight"] = (rng.standard_normal((cout, cin, 3, 3)) * std).astype(np.float32)
            vgg[f"features.{index}.bias"] = (rng.standard_normal(cout) * 0.01).astype(np.float32)
            cin = cout
    lin = {f"lin{i}.model.1.weight": rng.uniform(0, 0.1, (1, convs[-1][1], 1, 1)).astype(np.float32)
           for i, convs in enumerate(SLICES)}
    return vgg, lin
