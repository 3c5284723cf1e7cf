"""The `bicsr` degradation: MATLAB bicubic downsampling (antialiased), as the reference."""
import numpy as np

from resshift_jax.data.imresize import imresize


class BicubicDegradation:
    """`deg(hq, rng) -> (hq, lq)` with lq = imresize(hq, 1/sf), clipped to [0, 1]."""

    def __init__(self, params, sf: int, gt_size: int):
        self.sf, self.gt_size = int(sf), int(gt_size)

    def __call__(self, hq: np.ndarray, rng: np.random.Generator):
        lq = np.clip(imresize(hq.astype(np.float32), 1.0 / self.sf), 0.0, 1.0)
        return {"hq": hq.astype(np.float32), "lq": lq.astype(np.float32)}
