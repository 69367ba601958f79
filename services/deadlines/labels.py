"""Bounded metric labels shared by escalation and learning: values outside a known set become "other"."""

from __future__ import annotations

from collections.abc import Iterable

from services.deadlines.procedures import ProcedureBook

# Seed 001 §4.10.3's service areas; settings.service_areas (CASEFEEDBACK_SERVICE_AREAS) replaces them.
DEFAULT_SERVICE_AREAS = ("community_care", "childrens_services", "criminal_justice", "general")
OTHER = "other"


def fold(value: str, allowed: Iterable[str]) -> str:
    """`value` when it is in the bounded set, else "other"."""
    return value if value in set(allowed) else OTHER


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
            pairs |= {(stage.id, kind) for kind, days in (("acknowledge", stage.acknowledge),
                                                          ("respond", stage.respond)) if days is not None}
    return frozenset(pairs)
