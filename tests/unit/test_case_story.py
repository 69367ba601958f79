"""The one judgement of a case's acts (contract 11.1): pure, on the built-in procedures."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from services.cases.rules import judge, tell
from services.cases.story import Act, Case, Refusal
from services.deadlines.procedure_files import load_book

BOOK = load_book()
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)  # a Monday


def act(type_: str, days: float = 0, id_: str | None = None, **data: Any) -> Act:
    return Act(type_, id_ or f"{type_}-{days}", T0 + timedelta(days=days), data)


def received(procedure: str = "spso-mchp", stage: str = "stage1", **data: Any) -> Act:
    return act("complaint.received", 0, "r1", procedure=procedure, stage=stage, serious=False,
               service_area="general", **data)


def case_of(*acts: Act) -> Case:
    told = tell(acts, BOOK)
    assert not told.refused, told.refused
    return told.case


def refusal(case: Case, new: Act) -> Refusal:
    out = judge(case, new, BOOK)
    assert isinstance(out, Refusal), out
    return out


def test_an_escalation_to_a_stage_the_procedure_lacks_is_refused_naming_the_rule() -> None:
    case = case_of(received(), act("complaint.responded", 1, stage="stage1", outcome="not_upheld"),
                   act("complaint.escalated", 2, to_stage="stage2"))
    out = refusal(case, act("complaint.escalated", 3, to_stage="stage3"))
    assert out == ("not_allowed", "complaint.escalated to_stage stage3: procedure spso-mchp has no stage stage3 "
                                  "(stages: stage1, stage2)")


def test_an_extension_past_the_stage_limit_is_refused_and_one_within_it_admitted() -> None:
    case = case_of(received())
    seven_weeks = (T0 + timedelta(weeks=7)).date().isoformat()
    out = refusal(case, act("complaint.extension_agreed", 1, stage="stage1", new_due=seven_weeks))
    assert out.reason == "not_allowed" and "at most 10 working days" in out.detail
    within = judge(case, act("complaint.extension_agreed", 1, stage="stage1", new_due="2026-03-13"), BOOK)
    assert isinstance(within, Case) and within.story is not None
    assert str(within.story.visit.extended_to) == "2026-03-13"


def test_a_stage_that_allows_no_extension_refuses_one() -> None:
    case = case_of(received("england-children-2006"), act("complaint.responded", 1, stage="stage1", outcome="upheld"),
                   act("complaint.escalated", 2, to_stage="stage2"),
                   act("complaint.responded", 3, stage="stage2", outcome="upheld"),
                   act("complaint.escalated", 4, to_stage="stage3"))
    out = refusal(case, act("complaint.extension_agreed", 5, stage="stage3", new_due="2026-05-01"))
    assert out.reason == "not_allowed" and "allows no extension" in out.detail


def test_a_suspension_the_procedure_does_not_allow_is_refused() -> None:
    out = refusal(case_of(received()), act("complaint.suspended", 1, stage="stage1", reason="advocate_appointment"))
    assert out.reason == "not_allowed" and "reasons it allows: none" in out.detail


def test_a_resumption_of_a_running_stage_is_refused() -> None:
    out = refusal(case_of(received("england-children-2006")), act("complaint.resumed", 1, stage="stage1"))
    assert out == ("not_allowed", "complaint.resumed: stage stage1 is not suspended")


def test_an_act_for_another_stage_than_the_case_is_at_is_refused() -> None:
    out = refusal(case_of(received()), act("complaint.acknowledged", 1, stage="stage2"))
    assert out.reason == "not_allowed" and "the case is at stage stage1" in out.detail


def test_a_late_acknowledgement_dated_before_the_escalation_is_admitted() -> None:
    case = case_of(received("dundee-2011", stage="level1"), act("complaint.responded", 4, stage="level1",
                                                                outcome="upheld"),
                   act("complaint.escalated", 6, to_stage="level2"))
    late = judge(case, act("complaint.acknowledged", 1, stage="level1"), BOOK)
    assert isinstance(late, Case) and late.story is not None
    assert late.story.stage == "level2" and late.story.visits[0].acknowledged == T0 + timedelta(days=1)


def test_a_response_dated_after_a_recorded_withdrawal_is_refused() -> None:
    case = case_of(received(), act("complaint.withdrawn", 2))
    out = refusal(case, act("complaint.responded", 3, stage="stage1", outcome="upheld"))
    assert out.reason == "not_allowed" and "withdrawn" in out.detail


def test_a_late_withdrawal_that_contradicts_a_recorded_response_is_refused_as_inconsistent() -> None:
    case = case_of(received(), act("complaint.responded", 3, stage="stage1", outcome="upheld"),
                   act("complaint.closed", 4))
    out = refusal(case, act("complaint.withdrawn", 2))
    assert out.reason == "inconsistent" and "contradicts the case's complaint.responded" in out.detail


def test_a_withdrawn_case_may_be_closed_and_stays_withdrawn() -> None:
    case = case_of(received(), act("complaint.withdrawn", 2), act("complaint.closed", 3))
    assert case.status == "withdrawn"
    assert refusal(case, act("complaint.acknowledged", 4)).reason == "not_allowed"


def test_acts_after_closure_are_refused_except_an_escalation_after_the_response() -> None:
    case = case_of(received(), act("complaint.responded", 1, stage="stage1", outcome="not_upheld"),
                   act("complaint.closed", 2))
    assert case.status == "closed"
    assert refusal(case, act("complaint.acknowledged", 3)).reason == "not_allowed"
    assert refusal(case, act("complaint.closed", 3)).reason == "not_allowed"
    reopened = judge(case, act("complaint.escalated", 3, to_stage="stage2"), BOOK)
    assert isinstance(reopened, Case) and reopened.status == "open"


def test_a_second_receipt_with_another_id_is_refused() -> None:
    out = refusal(case_of(received()), act("complaint.received", 1, "r2", procedure="spso-mchp", stage="stage1",
                                           serious=False, service_area="general"))
    assert out.reason == "inconsistent" and "already received as r1" in out.detail


@pytest.mark.parametrize(("acts", "status"), [
    ((), "open"),
    ((act("complaint.responded", 1, stage="stage1", outcome="upheld"),), "responded"),
    ((act("complaint.responded", 1, stage="stage1", outcome="upheld"), act("complaint.escalated", 2,
                                                                           to_stage="stage2")), "open"),
    ((act("complaint.closed", 1),), "closed"),
    ((act("complaint.withdrawn", 1),), "withdrawn"),
])
def test_a_case_has_exactly_one_status(acts: tuple[Act, ...], status: str) -> None:
    assert case_of(received(), *acts).status == status


def test_a_suspended_stage_is_suspended_until_resumed_or_answered() -> None:
    case = case_of(received("england-children-2006"),
                   act("complaint.suspended", 1, stage="stage1", reason="advocate_appointment"))
    assert case.status == "suspended"
    resumed = judge(case, act("complaint.resumed", 3, stage="stage1"), BOOK)
    assert isinstance(resumed, Case) and resumed.status == "open" and resumed.story is not None
    assert resumed.story.visit.stopped_days == 2


def test_learning_acts_need_an_open_learning_stage() -> None:
    assert refusal(case_of(received()), act("learning.plan.submitted", 1)).reason == "not_allowed"
    closed = case_of(received(), act("complaint.closed", 1), act("learning.action.added", 2, action_id="a1"))
    assert refusal(closed, act("learning.action.completed", 3, action_id="a9")).reason == "inconsistent"
    done = case_of(received(), act("complaint.closed", 1), act("learning.plan.submitted", 2))
    assert refusal(done, act("learning.plan.submitted", 3)).reason == "not_allowed"


def test_history_order_is_judged_as_intake_judged_it() -> None:
    """A 1.1 history holding a forbidden act: `tell` leaves it out and says why."""
    forbidden = act("complaint.escalated", 3, to_stage="stage3")
    told = tell([received(), act("complaint.escalated", 2, to_stage="stage2"), forbidden,
                 act("complaint.responded", 4, stage="stage2", outcome="upheld")], BOOK)
    assert [a for a, _ in told.refused] == [forbidden]
    assert told.case.story is not None and told.case.story.stages == ("stage1", "stage2")
    assert told.case.status == "responded"


def test_a_story_implies_its_deadlines_from_its_acts_alone() -> None:
    """services.cases.deadlines: a response acknowledges; a suspension moves the stage's deadlines later."""
    from services.cases.deadlines import case_deadlines

    dundee = case_of(act("complaint.received", 0, "r1", procedure="dundee-2011", stage="level1", serious=False,
                         service_area="general"),
                     act("complaint.responded", 3, stage="level1", outcome="upheld"))
    assert dundee.story is not None
    found = {d.kind: d for d in case_deadlines(dundee.story, BOOK)}
    assert found["acknowledge"].met_at == found["respond"].met_at == T0 + timedelta(days=3)
    assert str(found["respond"].due.date()) == "2026-03-16"  # 14 calendar days after 2 March
    plain = case_of(received("england-children-2006"))
    stopped = case_of(received("england-children-2006"),
                      act("complaint.suspended", 1, stage="stage1", reason="advocate_appointment"),
                      act("complaint.resumed", 3, stage="stage1"))
    assert plain.story is not None and stopped.story is not None
    [before] = [d for d in case_deadlines(plain.story, BOOK) if d.kind == "respond"]
    [after] = [d for d in case_deadlines(stopped.story, BOOK) if d.kind == "respond"]
    assert (after.due.date() - before.due.date()).days == 2  # two working days stood still, Tuesday to Thursday
    still = case_of(received("england-children-2006"),
                    act("complaint.suspended", 1, stage="stage1", reason="advocate_appointment"))
    assert still.story is not None
    assert all(d.settled_at() is None for d in case_deadlines(still.story, BOOK) if d.kind == "respond")
