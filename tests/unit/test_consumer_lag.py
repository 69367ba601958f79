"""Broker-side consumer lag as contract section 7 defines it: end offsets minus the group's committed offsets."""

from __future__ import annotations

from aiokafka import TopicPartition

from services.common.lag import lag_by_topic

EVENTS, COMPLAINTS = "casefeedback.events", "feedback.complaints"


def test_lag_is_end_offset_minus_committed_summed_per_topic() -> None:
    end = {TopicPartition(EVENTS, 0): 120, TopicPartition(EVENTS, 3): 50, TopicPartition(COMPLAINTS, 1): 7}
    committed = {TopicPartition(EVENTS, 0): 100, TopicPartition(EVENTS, 3): 50, TopicPartition(COMPLAINTS, 1): 2}
    assert lag_by_topic([EVENTS, COMPLAINTS], end, committed, {}) == {EVENTS: 20, COMPLAINTS: 5}


def test_a_partition_the_group_never_committed_counts_from_its_start() -> None:
    tp = TopicPartition(EVENTS, 2)
    assert lag_by_topic([EVENTS], {tp: 90}, {tp: None}, {tp: 40}) == {EVENTS: 50}


def test_topics_without_owned_partitions_are_exported_at_zero() -> None:
    assert lag_by_topic([EVENTS, COMPLAINTS], {}, {}, {}) == {EVENTS: 0, COMPLAINTS: 0}
