"""Bicubic upsampling identical to torch.nn.functional.interpolate(mode="bicubic").

The reference upsamples the LQ image with torch's bicubic (Keys cubic with a = -0.75,
align_corners=False, source indices clamped at the edges, no antialiasing) before
encoding it. `jax.image.resize` uses a = -0.5 and antialiasing, so it is not this.
"""
import jax.numpy as jnp
import numpy as np

_A = -0.75


def _cubic_weights(frac: np.ndarray) -> np.ndarray:
    """Keys cubic convolution weights of the 4 taps at offsets -1, 0, 1, 2."""
    def near(x):  # |x| <= 1
        return ((_A + 2) * x - (_A + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((_A * x - 5 * _A) * x + 8 * _A) * x - 4 * _A

    return np.stack([far(frac + 1), near(frac), near(1 - frac), far(2 - frac)], axis=-1)


def _taps(in_size: int, scale: float):
    """Source indices (out, 4) and weights (out, 4) along one axis."""
    out_size = int(np.floor(in_size * scale))
    dst = np.arange(out_size, dtype=np.float64)
    src = (dst + 0.5) / scale - 0.5
    base = np.floor(src)
    weights = _cubic_weights(src - base).astype(np.float32)
    idx = np.clip(base[:, None].astype(np.int64) + np.arange(-1, 3), 0, in_size - 1)
    return idx, weights


def _resize_axis(x, axis: int, scale: float):
    idx, w = _taps(x.shape[axis], scale)
    gathered = jnp.take(x, jnp.asarray(idx.reshape(-1)), axis=axis)
    shape = list(x.shape)
    shape[axis:axis + 1] = [idx.shape[0], 4]
    gathered = gathered.reshape(shape)
    w_shape = [1] * len(shape)
    w_shape[axis:axis + 2] = [idx.shape[0], 4]
    return jnp.sum(gathered * jnp.asarray(w, x.dtype).reshape(w_shape), axis=axis + 1)


def bicubic_upsample(x, scale: float):
    """Upsample an NHWC batch by `scale` exactly as torch's bicubic interpolate."""
    if scale == 1:
        return x
    return _resize_axis(_resize_axis(x, 2, scale), 1, scale)
