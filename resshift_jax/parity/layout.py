"""Array layouts at the fixture boundary: fixtures are NCHW (the reference's), we are NHWC."""
import numpy as np


def nchw(x) -> np.ndarray:
    """NHWC (or a stack of them, TNHWC) -> NCHW (TNCHW), float32."""
    x = np.asarray(x, np.float32)
    return x.transpose(0, 3, 1, 2) if x.ndim == 4 else x.transpose(0, 1, 4, 2, 3)


def nhwc(x) -> np.ndarray:
    """NCHW (TNCHW) -> NHWC (TNHWC), float32."""
    x = np.asarray(x, np.float32)
    return x.transpose(0, 2, 3, 1) if x.ndim == 4 else x.transpose(0, 1, 3, 4, 2)
