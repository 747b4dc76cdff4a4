"""Fixtures shared by every test folder (keep it small: one seeded RNG), and the
tests folder on the import path for ``format_reader``, the independent reader
of docs/vector_file_format.md that tests use to see the bytes."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def rng() -> np.random.Generator:
    """A numpy Generator with a fixed seed, so failures reproduce."""
    return np.random.default_rng(1234)
