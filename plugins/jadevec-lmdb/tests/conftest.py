"""Helpers of the plugin's tests: a forked child whose crash, hang or error is reported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from jadevec.testing import ChildOutcome, run_in_child


@pytest.fixture
def forked() -> Callable[[Callable[[], Any], float], ChildOutcome]:
    """jadevec's ``run_in_child``: ``forked(body, timeout) -> (status, result)``."""
    return run_in_child
