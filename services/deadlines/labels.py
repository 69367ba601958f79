"""Bounded `stage` labels: the stage ids the configured procedures define (service areas, respondent types
and themes are the operator's labels file, `services/common/labels.yaml`)."""

from __future__ import annotations

from services.deadlines.procedures import ProcedureBook


def known_stages(book: ProcedureBook) -> frozenset[str]:
    """Every stage id of the current procedures (the bounded set of `stage` labels)."""
    procedures = [book.current(pid) for pid in book.ids()]
    return frozenset(s for p in procedures if p is not None for s in p.stage_ids())


def known_deadlines(book: ProcedureBook) -> frozenset[tuple[str, str]]:
    """Every (stage, kind) of deadline the current procedures set (what the breach counter starts at 0 for)."""
    pairs: set[tuple[str, str]] = set()
    for procedure_id in book.ids():
        procedure = book.current(procedure_id)
        for stage in procedure.stages if procedure is not None else ():
            pairs |= {(stage.id, kind) for kind, _, _ in stage.timescales()}
    return frozenset(pairs)
