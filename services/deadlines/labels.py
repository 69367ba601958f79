"""Bounded `stage` and `procedure` labels: the stage ids and procedure ids the configured procedures define
(service areas, respondent types and themes are the operator's labels file, `services/common/labels.yaml`)."""

from __future__ import annotations

from services.deadlines.procedures import ProcedureBook


def known_stages(book: ProcedureBook) -> frozenset[str]:
    """Every stage id of the current procedures (the bounded set of `stage` labels)."""
    procedures = [book.current(pid) for pid in book.ids()]
    return frozenset(s for p in procedures if p is not None for s in p.stage_ids())


def procedure_label(key: str) -> str:
    """The `procedure` label of a case received under the version `key` (`id@version#hash`): the procedure's id."""
    return key.partition("@")[0]


def known_deadlines(book: ProcedureBook) -> frozenset[tuple[str, str, str]]:
    """Every (procedure, stage, kind) of deadline the current procedures set (what the breach counter starts at 0
    for): the same stage id in two procedures is two deadlines."""
    triples: set[tuple[str, str, str]] = set()
    for procedure_id in book.ids():
        procedure = book.current(procedure_id)
        for stage in procedure.stages if procedure is not None else ():
            triples |= {(procedure_id, stage.id, kind) for kind, _, _ in stage.timescales()}
    return frozenset(triples)
