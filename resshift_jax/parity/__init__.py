"""Parity with the PyTorch reference: fixture sets, their runner and its report.

`python -m resshift_jax.parity DIR` runs every entry of DIR/fixtures.json (the contract:
tests/fixtures/parity/README.md). Nothing here is imported by the product modules.
"""
from resshift_jax.parity.compare import (CHAIN_TOL, SCHEDULE_TOL, SINGLE_PASS_TOL, Row, compare,
                                         format_table, passed, relative_error)
from resshift_jax.parity.layout import nchw, nhwc
from resshift_jax.parity.report import chain_report
from resshift_jax.parity.runner import main, run_fixtures

__all__ = ["CHAIN_TOL", "SCHEDULE_TOL", "SINGLE_PASS_TOL", "Row", "compare", "format_table",
           "passed", "relative_error", "nchw", "nhwc", "chain_report", "main", "run_fixtures"]
