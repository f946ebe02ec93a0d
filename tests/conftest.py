"""Fixtures shared by the core tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import EXAMPLES


@pytest.fixture(params=EXAMPLES, ids=[p.stem for p in EXAMPLES])
def example_path(request) -> Path:
    return request.param
