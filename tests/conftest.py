"""Test setup: 8 simulated CPU devices and float32 reference precision.

XLA_FLAGS must be set before jax is imported anywhere, hence at conftest import time.
"""
import os
import pathlib

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

PARITY_DIR = pathlib.Path(__file__).parent / "fixtures" / "parity"


@pytest.fixture(scope="session")
def parity_dir() -> pathlib.Path:
    return PARITY_DIR
