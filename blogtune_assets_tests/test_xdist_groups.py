"""The suite's parallel layout: each test module runs on one pytest-xdist worker (conftest.py groups them)."""

import os

import pytest


def test_this_module_runs_on_one_worker(request):
    # The group keeps a module's fixtures, and the demo's five-minute run, built once. pytest 9 ignores the node-id
    # suffix pytest-xdist 3.8 groups by, and a grouping hook that ran after xdist's did nothing: both fell back to
    # splitting modules across workers, silently.
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        pytest.skip("not under pytest-xdist (-n 0)")
    assert request.node.nodeid.endswith("@blogtune_assets_tests.test_xdist_groups")
