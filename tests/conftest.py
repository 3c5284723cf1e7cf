"""Test setup: 8 simulated CPU devices, float32 reference precision, and one persistent
compilation cache for the whole run.

XLA_FLAGS must be set before jax is imported anywhere, hence at conftest import time. The
cache folder is made by the first process that imports this (pytest-xdist's controller, whose
environment its workers and every test's subprocess inherit) and removed by it at the end:
many tests compile the same programs in new closures or new processes (train.py, sample.py),
and reading them back saves minutes of a CI run. Tests that measure compilation set their own.
"""
import os
import pathlib
import shutil
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWN_CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="resshift-xla-")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

PARITY_DIR = pathlib.Path(__file__).parent / "fixtures" / "parity"


@pytest.fixture(scope="session")
def parity_dir() -> pathlib.Path:
    return PARITY_DIR


def pytest_unconfigure(config):
    if _OWN_CACHE:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
