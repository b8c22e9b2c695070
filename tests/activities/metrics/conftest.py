"""One warm metrics plane for the modules that only read it.

Starting Prometheus costs about 5 s before its first scrape (its discovery sends targets on a
fixed 5 s tick), and every ``rate()`` window then has to fill: one plane shared by the package
pays that once.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sluice.stack import DataPlane
from tests.support.planes import metrics_plane


@pytest.fixture(scope="package")
def warm_metrics_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataPlane]:
    """The canary failing 20% of its requests, Prometheus scraping Envoy, 20 requests/s to each
    backend. Tests must not change it (faults, routes, stopping a part)."""
    with metrics_plane(tmp_path_factory.mktemp("metrics-plane")) as plane:
        yield plane
