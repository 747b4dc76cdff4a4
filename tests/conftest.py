"""Fixtures shared by every test folder (keep it small: one seeded RNG)."""

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A numpy Generator with a fixed seed, so failures reproduce."""
    return np.random.default_rng(1234)
