"""Shared fixtures. Real public datasets live in ../shared/data beside the checkout."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ONEMAP_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; the test is skipped (and says why) only when that folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not present: {SHARED_DATA} is absent (../shared is not checked out here)")
    return SHARED_DATA
