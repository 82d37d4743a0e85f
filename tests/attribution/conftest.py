"""The stand-in Kubernetes API (tests/helpers/kubeapi.py) with the shop cluster, for the attribution tests;
everything it served must have passed the Kubernetes schema checks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.kubeapi import FakeKubeApi, shop_cluster


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    a = FakeKubeApi()
    shop_cluster(a)
    a.start()
    yield a
    a.stop()
    assert a.invalid == [], a.invalid
