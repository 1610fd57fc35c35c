"""The `grid` fixture: a Grid (see grids.py) writing its metrics files under tmp_path."""

import pytest

from .grids import Grid


@pytest.fixture
def grid(tmp_path) -> Grid:
    return Grid(tmp_path / "metrics")
