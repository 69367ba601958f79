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
