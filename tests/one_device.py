"""The environment for a `sample.py` subprocess: one CPU device, as a CPU user has (the
test process itself simulates 8; multi-device sampling is tested in-process)."""
import os

ENV = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
