"""Parity with the PyTorch reference: error metric and fixture runner."""
import numpy as np


def relative_error(port, ref) -> float:
    """max|port - ref| / max(1, max|ref|), the contract's error measure."""
    port = np.asarray(port, np.float64)
    ref = np.asarray(ref, np.float64)
    if port.shape != ref.shape:
        raise ValueError(f"shape mismatch: port {port.shape} vs reference {ref.shape}")
    return float(np.max(np.abs(port - ref)) / max(1.0, float(np.max(np.abs(ref)))))
