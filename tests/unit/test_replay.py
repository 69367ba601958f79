"""Replay's pure parts: re-derivation matching, live comparison, version checks, the summary."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from services.audit.differences import Difference, compare
from services.audit.rebuild import CaseRebuild, SubjectVersions
from services.audit.replay import ReplaySummary, render_summary
from services.common.eventstore import StoredEvent
from services.deadlines.procedures import ProcedureBook
from services.deadlines.projection import CaseProjection

T = datetime(2011, 1, 1, tzinfo=timezone.utc)


def stored(seq: int, subject: str, version: int, type_: str, source: str = "crm", **data: Any) -> StoredEvent:
    body = {"id": f"e{seq}", "subject": subject, "type": type_, "source": source, "time": T.isoformat(), "data": data}
    return StoredEvent(seq, f"e{seq}", subject, version, type_, T, T, body)


@dataclass
class Decision:
    state: Any
    derived: list[dict[str, Any]] = field(default_factory=list)


def counting_decide(state: Any, body: dict[str, Any]) -> Decision:
    """A toy domain: every inbound event is counted and derives one `tick` event with the count."""
    if body["source"] == "svc":
        return Decision(state)
    n = (state or 0) + 1
    return Decision(n, [{"id": f"tick-{body['subject']}-{n}", "subject": body["subject"], "type": "tick",
                         "source": "svc", "time": T.isoformat(), "data": {"n": n}}])


def tick(seq: int, subject: str, version: int, n: int, recorded_n: int | None = None) -> StoredEvent:
    event = stored(seq, subject, version, "tick", "svc", n=recorded_n if recorded_n is not None else n)
    body = {**event.body, "id": f"tick-{subject}-{n}"}
    return StoredEvent(seq, body["id"], subject, version, "tick", T, T, body)


def deriving(decide: Any, rebuild: type[CaseRebuild] = CaseRebuild) -> CaseRebuild:
    """A case projection declared around a toy `decide` (every type but `tick` is an input)."""
    async def no_live(conn: Any) -> dict[str, Any]:
        return {}

    declared: CaseProjection[Any] = CaseProjection(
        "svc", "t", "svc", ("x", "complaint.received", "complaint.acknowledged"),
        lambda state, body, book: decide(state, body), lambda state, until: (state, []),
        lambda state: state, lambda data: data, lambda state: (), lambda state: (True, "", ""), no_live)
    return rebuild(declared, ProcedureBook())


def run(projection: CaseRebuild, events: list[StoredEvent]) -> list[Difference]:
    found = [d for e in events for d in projection.apply(e)]
    return found + projection.finish()


def test_recorded_derived_events_equal_to_the_re_derived_ones_pass() -> None:
    p = deriving(counting_decide)
    events = [stored(1, "a", 1, "x"), tick(2, "a", 2, 1), stored(3, "a", 3, "x"), tick(4, "a", 4, 2)]
    assert run(p, events) == []
    assert p.state() == {"a": 2}


def test_a_recorded_derived_event_with_another_body_is_named() -> None:
    p = deriving(counting_decide)
    found = run(p, [stored(1, "a", 1, "x"), tick(2, "a", 2, 1, recorded_n=7)])
    assert [d.subject for d in found] == ["a"]
    assert "differs from the re-derived one" in found[0].detail and "expected {'n': 1}" in found[0].detail


def test_a_derived_event_nothing_explains_and_one_never_recorded_are_both_named() -> None:
    p = deriving(counting_decide)
    found = run(p, [tick(1, "ghost", 1, 5), stored(2, "b", 1, "x")])
    assert [(d.subject, "not derived again" in d.detail) for d in found] == [("ghost", True), ("b", False)]
    assert "was never recorded" in found[1].detail


def test_compare_names_every_key_that_differs_or_is_missing_in_key_order() -> None:
    found = compare("p", {"a": 1, "b": 2, "c": 3}, {"b": 2, "c": 4, "d": 5})
    assert [(d.subject, d.detail.split()[0]) for d in found] == [("a", "rebuilt"), ("c", "rebuilt"), ("d", "in")]
    assert "rebuilt 3 but live 4" in found[1].detail


def test_subject_versions_must_run_without_gaps() -> None:
    p = SubjectVersions()
    assert p.apply(stored(1, "a", 1, "x")) == []
    assert p.apply(stored(2, "a", 3, "x"))[0].detail == "version 3 at seq 2, expected 2"


def test_summary_names_the_first_differing_case_and_counts_types() -> None:
    summary = ReplaySummary(events=3, seconds=1.0, projections=["history"])
    summary.by_type.update({"complaint.received": 2, "deadline.met": 1})
    assert "no differences" in render_summary(summary) and "  complaint.received: 2" in render_summary(summary)
    summary.differences = [Difference("chain", "case-9", "edited"), Difference("escalation", "case-1", "x")]
    text = render_summary(summary)
    assert "2 difference(s); first differing case: case-9" in text and "case-9 (chain): edited" in text


def test_the_progress_bar_draws_one_updating_line() -> None:
    import io

    from services.cli.replay import progress_bar

    out = io.StringIO()
    draw = progress_bar(out)
    draw(50, 100)
    draw(100, 100)
    assert out.getvalue() == ("\r[" + "#" * 15 + "." * 15 + "] 50/100 events" + "\r[" + "#" * 30 + "] 100/100 events")


def test_an_event_a_projection_cannot_apply_is_a_difference_not_a_crash() -> None:
    from services.audit.replay import _apply_all

    class Broken(CaseRebuild):
        def apply(self, event: Any) -> Any:
            raise KeyError("stage")

    found = _apply_all(deriving(lambda s, b: None, Broken), [stored(7, "case-3", 1, "complaint.acknowledged")])
    assert [(d.subject, d.seq) for d in found] == [("case-3", 7)]
    assert "cannot apply complaint.acknowledged e7 (seq 7): KeyError" in found[0].detail


def test_a_decide_that_raises_is_refused_in_replay_as_live_refuses_it_and_the_state_stands() -> None:
    from services.audit.replay import _apply_all

    def decide(state: Any, body: dict[str, Any]) -> Decision:
        if body["type"] == "complaint.acknowledged":
            raise OverflowError("date value out of range")
        return Decision(("received", body["id"]))

    projection = deriving(decide)
    events = [stored(6, "case-3", 1, "complaint.received"), stored(7, "case-3", 2, "complaint.acknowledged")]
    assert _apply_all(projection, events) == []
    assert projection.state() == {"case-3": ("received", "e6")}


def test_a_batch_reports_differences_in_history_order_whatever_the_projection() -> None:
    from services.audit.replay import apply_rows

    def row(seq: int) -> tuple[Any, ...]:  # a row of replay.QUERY (read by position), without the chain's columns
        event = stored(seq, f"s{seq}", 1, "x")
        return (seq, event.id, event.subject, 1, "x", T, T, json.dumps(event.body))

    a, b = SubjectVersions(), SubjectVersions(name="second")
    b.versions = {"s1": 1, "s3": 5}  # the second projection objects to seq 1 and 3, the first to seq 2
    a.versions = {"s2": 4}
    summary = ReplaySummary()
    apply_rows([row(1), row(2), row(3)], [a, b], None, summary)  # type: ignore[list-item]
    assert [(d.seq, d.projection) for d in summary.differences] == [(1, "second"), (2, "history"), (3, "second")]
    assert summary.events == 3 and summary.by_type == {"x": 3}


def test_replay_splits_over_processes_only_for_a_large_history_on_two_cpus_or_more() -> None:
    from services.audit.parallel import AUTO_MIN_EVENTS, auto_workers

    assert auto_workers(AUTO_MIN_EVENTS - 1, cpus=8) == 1  # starting processes costs about what it saves
    assert auto_workers(AUTO_MIN_EVENTS, cpus=1) == 1
    assert auto_workers(AUTO_MIN_EVENTS, cpus=2) == 2  # two shards, the reader beside them
    assert auto_workers(AUTO_MIN_EVENTS, cpus=4) == 3  # one CPU for the reader, the rest for shards
    assert auto_workers(10 * AUTO_MIN_EVENTS, cpus=32) == 4  # at most four


def test_summary_prints_the_chain_head_to_publish() -> None:
    summary = ReplaySummary(events=2, seconds=1.0, head=(2, bytes.fromhex("3f" * 32)))
    assert f"\nchain head: seq 2 hash {'3f' * 32}\n" in render_summary(summary)


def test_a_stored_instant_hashes_the_same_whatever_offset_it_was_given_with() -> None:
    from datetime import timedelta

    from services.common.eventstore import instant_text

    utc = datetime(2011, 12, 31, 23, 30, 0, 1, tzinfo=timezone.utc)
    assert instant_text(utc) == instant_text(utc.astimezone(timezone(timedelta(hours=-5)))) == "1325374200000001"
    assert instant_text(utc + timedelta(microseconds=1)) != instant_text(utc)


def test_following_positions_leaves_out_what_the_service_has_not_applied_but_keeps_what_it_derived() -> None:
    from services.audit.applied import Positions, partition_of

    p = deriving(counting_decide)
    a_part = partition_of("a", 6)
    # the service applied partition a's events up to seq 3; its tick's own events come after, whatever their seq
    p.positions = Positions.of({a_part: 3}, 6)
    events = [stored(1, "a", 1, "x"), tick(2, "a", 2, 1), stored(3, "a", 3, "x"), tick(4, "a", 4, 2),
              stored(5, "a", 5, "x"), stored(6, "a", 6, "complaint.received")]  # not applied yet: left out
    assert run(p, events) == []  # neither a difference nor a derived event "never recorded"
    assert p.state() == {"a": 2} and p.unapplied == 2
    other = next(s for s in ("b", "c", "d", "e", "f", "g", "h") if partition_of(s, 6) != a_part)
    assert run(p, [stored(7, other, 1, "x")]) == [] and other not in p.state()  # its partition: nothing applied


def test_positions_place_a_subject_on_its_partition_and_below_the_lowest_every_event_is_applied() -> None:
    from services.audit.applied import Positions, partition_of

    seqs = {p: 100 + p for p in range(6)}
    positions = Positions.of(seqs, 6)
    assert positions.floor == 100
    assert all(positions.applied(s, 100) for s in ("a", "b", "case-1"))
    assert positions.applied("case-1", 100 + partition_of("case-1", 6))
    assert not positions.applied("case-1", 101 + partition_of("case-1", 6))
    assert Positions.of({0: 50}, 6).floor == 0  # a partition with no position has applied nothing


def test_the_judgement_lists_acts_it_refuses_in_a_history_and_judges_each_case_in_history_order() -> None:
    from services.audit.judgement import Judgement
    from services.deadlines.procedure_files import load_book

    judgement = Judgement(load_book())
    received: dict[str, Any] = {"stage": "stage1", "serious": False, "service_area": "housing", "channel": "web",
                "procedure": "spso-mchp"}
    events = [stored(1, "c", 1, "complaint.received", **received), stored(2, "c", 2, "complaint.escalated",
                                                                         to_stage="stage3"),
              stored(3, "d", 1, "complaint.acknowledged", stage="stage1"),  # no receipt: inconsistent
              stored(4, "c", 3, "complaint.escalated", to_stage="stage2")]
    assert [d for e in events for d in judgement.apply(e)] == []
    assert [(r.seq, r.subject, r.type, r.reason) for r in judgement.refused] == [
        (2, "c", "complaint.escalated", "not_allowed"), (3, "d", "complaint.acknowledged", "inconsistent")]
    assert "procedure spso-mchp has no stage stage3" in judgement.refused[0].detail
    assert judgement.cases["c"].status == "open" and len(judgement.cases["c"].acts) == 2


def test_summary_lists_refused_acts_first_twenty_and_how_far_each_service_was_behind() -> None:
    from services.audit.judgement import RefusedAct

    summary = ReplaySummary(events=30, seconds=1.0, projections=["history"], compared=["escalation"])
    summary.refused = [RefusedAct(i, f"case-{i}", "complaint.escalated", "not_allowed", "no stage3")
                       for i in range(1, 23)]
    summary.unapplied = {"escalation": 12, "learning": 0, "metrics": 1234}
    text = render_summary(summary)
    assert "refused by the judgement: 22 act(s) (skipped by every output; not differences)\n" in text
    assert "  seq 1 case-1 complaint.escalated: not_allowed: no stage3\n" in text
    assert "  seq 20 case-20 " in text and "seq 21 " not in text and "  ... and 2 more\n" in text
    assert "compared at the services' positions; events not yet applied, left out: escalation 12, metrics 1,234" \
        in text
    assert text.endswith("no differences\n")  # refused acts are no difference
    summary.unapplied = {"escalation": 0}
    assert "every service has applied the whole history" in render_summary(summary)
