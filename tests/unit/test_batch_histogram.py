"""BatchHistogram is exposed exactly as prometheus-client's Histogram given the same observations."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from services.common.metrics import BatchHistogram

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def _exposition(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def _pair() -> tuple[CollectorRegistry, Histogram, CollectorRegistry, BatchHistogram]:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("x_delay_seconds", "Delay", ["service"], buckets=BUCKETS, registry=theirs)
    batched = BatchHistogram("x_delay_seconds", "Delay", ["service"], BUCKETS, registry=ours)
    return theirs, reference, ours, batched


@given(st.lists(st.lists(st.sampled_from([0.0, *BUCKETS, 1e9]) | st.floats(0, 400), max_size=30), max_size=4))
def test_batches_are_exposed_as_the_same_observations_one_by_one(batches: list[list[float]]) -> None:
    theirs, reference, ours, batched = _pair()
    for i, batch in enumerate(batches):
        service, child = ("intake", "metrics")[i % 2], reference.labels(("intake", "metrics")[i % 2])
        for value in batch:
            child.observe(value)
        batched.labels(service).observe_many(batch)
    expected, got = _exposition(theirs), _exposition(ours)
    # the sum is added batch-wise rather than value by value: equal up to float rounding
    assert [line for line in got if "_sum" not in line] == [line for line in expected if "_sum" not in line]
    sums = [(float(a.rsplit(" ", 1)[1]), float(b.rsplit(" ", 1)[1]))
            for a, b in zip(expected, got, strict=True) if "_sum" in a]
    assert all(b == pytest.approx(a) for a, b in sums)


def test_a_value_on_a_bound_counts_in_that_bucket_and_a_single_observe_works() -> None:
    _, _, ours, batched = _pair()
    batched.labels("intake").observe(0.005)
    batched.labels("intake").observe_many([0.0051, 400.0])
    text = _exposition(ours)
    assert 'x_delay_seconds_bucket{le="0.005",service="intake"} 1.0' in text
    assert 'x_delay_seconds_bucket{le="0.01",service="intake"} 2.0' in text
    assert 'x_delay_seconds_bucket{le="300.0",service="intake"} 2.0' in text
    assert 'x_delay_seconds_bucket{le="+Inf",service="intake"} 3.0' in text
    assert 'x_delay_seconds_count{service="intake"} 3.0' in text
    with pytest.raises(ValueError):
        batched.labels("intake", "extra")
