"""One local Ray instance for the whole test session (ray.init costs seconds: pay it once)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def ray_local() -> Iterator[dict[str, Any]]:
    import chunk_scorers
    from ray import cloudpickle

    from screening.ray_runner import ray_session

    # The test scorers live in a test module the workers cannot import: ship them by value (with Ray's
    # vendored cloudpickle, which is the one Ray serialises with).
    cloudpickle.register_pickle_by_value(chunk_scorers)
    with ray_session(num_cpus=2) as resources:
        yield resources
