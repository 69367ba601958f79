"""Every deriving domain reads a case's acts through the one judgement (`services.cases`, contract 11.1).

`decide_judged(decide, state, body, book)` judges a case act against the story the state keeps
(`state.case`): an act the judgement refuses (one recorded under contract 1.1) is skipped with the
judgement's reason and detail, never dead-lettered; an admitted act goes to the domain's own
`decide`, whose refusal is then `internal`, a fault of the service. Events the story does not judge
(the services' own derived events) go straight to `decide`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from schemas.times import event_time
from services.cases import rules
from services.cases.story import JUDGED_TYPES, Case, Refusal, act_of
from services.deadlines import timers
from services.deadlines.procedures import ProcedureBook

S = TypeVar("S")  # a domain's state: a named tuple with a `case` field


def folded(case: Case, book: ProcedureBook) -> Case:
    """The case with its story folded (a state decoded from the database keeps only the acts)."""
    return rules.tell(case.acts, book).case if case.acts and case.story is None else case


def decide_judged(decide: Callable[[S | None, dict[str, Any], ProcedureBook], timers.Decision[S]], state: S | None,
                  body: dict[str, Any], book: ProcedureBook) -> timers.Decision[S]:
    """`decide` for an event the judgement admits, with the state's story moved on (see the module docstring)."""
    act = act_of(body, event_time(body)) if body.get("type") in JUDGED_TYPES else None
    if act is None:
        return decide(state, body, book)
    known: Any = state
    told = rules.judge(folded(known.case, book) if known is not None else Case(), act, book)
    if isinstance(told, Refusal):
        return timers.Decision(state, refusal=told.detail, reason=told.reason)
    decision = decide(known._replace(case=told) if known is not None else None, body, book)
    made: Any = decision.state
    if made is not None and made.case is not told:  # a state the event made afresh
        decision.state = made._replace(case=told)
    if decision.refusal:
        decision.reason = timers.INTERNAL
    return decision
