"""Complaint procedures as data: the file format, its validation, and the book of known versions.

A procedure file (YAML) holds contract section 6: stages in order with acknowledge and respond times
(a respond period in days of the procedure's calendar or in calendar months, optionally agreed with
the complainant), the reasons for which a stage's clock may be suspended, which stages may be
bypassed at the complainant's request, the stage serious complaints start at, the calendar, the
warning lead time and the learning stage's time. Built-in files live beside this module; operators
add a folder (`CASEFEEDBACK_PROCEDURES_DIR`), whose files win over built-in ones with the same id.
Each version of a document is known by its key `id@version#hash`; a case keeps the key it was
received under, so editing a file never moves the deadlines of cases already open (the worker stores
every document it used in the database).
Reading the files is the adapter `procedure_files.py`'s; this module does no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from functools import cached_property
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, model_validator

from services.common.errors import ConfigurationError
from services.deadlines.calendar import REGIONS, Calendar, CalendarKind, DayOne, TimeUnit

Days = StrictInt
Ident = Field(min_length=1, max_length=50, pattern=r"^[a-z0-9_\-]+$")


class ProcedureError(ConfigurationError):
    """A procedure file or reference that cannot be used, with what to fix."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CalendarSpec(_Model):
    type: CalendarKind
    region: Literal["SCT", "ENG", "WLS", "NIR"] | None = None
    day_one: DayOne = "next_day_after_receipt"
    timezone: str = "Europe/London"

    @model_validator(mode="after")
    def _region_for_working_days(self) -> Self:
        if self.type == "working_days" and self.region is None:
            raise ValueError(f"working_days needs a region, one of {list(REGIONS)}")
        return self

    @cached_property
    def counting(self) -> Calendar:
        """The calendar this spec describes (built once: the spec is frozen, and deadlines use it per event)."""
        return Calendar(self.type, self.region, self.day_one, self.timezone)


class StageSpec(_Model):
    id: str = Ident
    name: str = Field(min_length=1, max_length=200)
    acknowledge: Days | None = Field(default=None, ge=1, le=366)
    respond: Days | None = Field(default=None, ge=1, le=366)
    respond_months: Days | None = Field(default=None, ge=1, le=36)
    respond_agreed: StrictBool = False
    max_extension: Days | None = Field(default=None, ge=1, le=366)
    extendable: StrictBool = True  # whether an extension may be agreed at all (max_extension caps one)
    bypassable: StrictBool = False
    suspension_reasons: list[str] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _one_respond_period(self) -> Self:
        if self.respond is not None and self.respond_months is not None:
            raise ValueError("give respond (days) or respond_months, not both")
        if self.respond_agreed and self.max_extension is not None:
            raise ValueError("a respond period agreed with the complainant has no max_extension")
        if self.respond_agreed and self.respond is None and self.respond_months is None:
            raise ValueError("respond_agreed needs the period that applies where none was agreed "
                             "(respond or respond_months)")
        return self

    def timescales(self) -> list[tuple[str, int, TimeUnit]]:
        """The stage's deadlines as (kind, amount, unit): acknowledge in days, respond in days or months."""
        out: list[tuple[str, int, TimeUnit]] = []
        if self.acknowledge is not None:
            out.append(("acknowledge", self.acknowledge, "days"))
        if self.respond is not None:
            out.append(("respond", self.respond, "days"))
        elif self.respond_months is not None:
            out.append(("respond", self.respond_months, "months"))
        return out

    def may_suspend(self, reason: str) -> bool:
        """Whether the clock of this stage may be stopped for `reason`."""
        return reason in self.suspension_reasons


class LearningSpec(_Model):
    days: Days = Field(ge=1, le=366)
    calendar: CalendarSpec | None = None


class Procedure(_Model):
    """One version of a complaint procedure."""

    id: str = Ident
    version: Days = Field(ge=1)
    title: str = Field(min_length=1, max_length=200)
    # The published model the procedure follows (`spso`: the SPSO model complaints handling procedure), which
    # says whose performance indicators its cases count in; None for a procedure of its own.
    model: str | None = Field(default=None, min_length=1, max_length=50, pattern=r"^[a-z0-9_\-]+$")
    source: str = Field(default="", max_length=500)
    notes: str = Field(default="", max_length=4000)
    calendar: CalendarSpec
    warning_lead: Days = Field(ge=0, le=30)
    serious_stage: str = Ident
    stages: list[StageSpec] = Field(min_length=1, max_length=20)
    learning: LearningSpec

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        ids = [s.id for s in self.stages]
        if len(ids) != len(set(ids)):
            raise ValueError("stage ids must be unique")
        if self.serious_stage not in ids:
            raise ValueError(f"serious_stage {self.serious_stage!r} is not one of the stages {ids}")
        return self

    @cached_property
    def key(self) -> str:
        """`id@version#hash`: names exactly this document's rules (computed once: the model is frozen). `model`
        moves no deadline, so it is left out: naming the model a file follows keeps its cases' version."""
        return f"{self.id}@{self.version}#{document_hash(self.model_dump(mode='json', exclude={'model'}))[:12]}"

    def document(self) -> dict[str, Any]:
        """The document as JSON-ready data (what the database stores); `model` only where one is named."""
        return self.model_dump(mode="json", exclude={"model"} if self.model is None else None)

    def stage_ids(self) -> list[str]:
        """Stage ids in procedure order."""
        return [s.id for s in self.stages]

    @cached_property
    def stages_by_id(self) -> dict[str, StageSpec]:
        """Each stage by its id (built once: the model is frozen)."""
        return {s.id: s for s in self.stages}

    def stage(self, stage_id: str) -> StageSpec | None:
        """The stage with this id, if the procedure has one."""
        return self.stages_by_id.get(stage_id)

    def escalation_refusal(self, current: str, to_stage: str) -> str | None:
        """Why escalating from `current` to `to_stage` is not allowed, or None when it is."""
        ids = self.stage_ids()
        if to_stage not in ids:
            return f"stage {to_stage!r} is not a stage of procedure {self.id} ({ids})"
        here, there = ids.index(current), ids.index(to_stage)
        if there <= here:
            last = " (the last stage)" if here == len(ids) - 1 else ""
            return f"cannot escalate from {current}{last} to {to_stage}: escalation only moves to a later stage"
        skipped = [s.id for s in self.stages[here + 1:there] if not s.bypassable]
        if skipped:
            return f"cannot escalate from {current} to {to_stage}: stage(s) {skipped} may not be bypassed"
        return None

    def case_calendar(self) -> Calendar:
        """The calendar complaint deadlines are counted in."""
        return self.calendar.counting

    def learning_calendar(self) -> Calendar:
        """The calendar the learning stage is counted in."""
        return (self.learning.calendar or self.calendar).counting


def document_hash(document: dict[str, Any]) -> str:
    """sha256 of a document's canonical JSON."""
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _where(loc: tuple[Any, ...], raw: Any) -> str:
    parts: list[str] = []
    node = raw
    for i, step in enumerate(loc):
        if isinstance(step, int) and isinstance(node, list) and step < len(node):
            node = node[step]
            sid = node.get("id") if isinstance(node, dict) else None
            parts[-1:] = [str(sid)] if sid and loc[i - 1] == "stages" else [*parts[-1:], str(step)]
            continue
        parts.append(str(step))
        node = node.get(step) if isinstance(node, dict) else None
    return ".".join(parts) or "(file)"


def _message(error: Any) -> str:
    kind, got = error["type"], error.get("input")
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number of days, got {got!r}"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    return f"{error['msg']}, got {got!r}" if not isinstance(got, dict | list) else str(error["msg"])


def parse_procedure(raw: Any, name: str) -> Procedure:
    """Validate decoded YAML as a procedure; errors name the file and the field."""
    try:
        return Procedure.model_validate(raw)
    except ValidationError as err:
        problems = [f"{_where(e['loc'], raw)} {_message(e)}" for e in err.errors()[:5]]
        raise ProcedureError(f"procedure file {name}: " + "; ".join(problems)) from None


class ProcedureBook:
    """Every procedure version known: the current one per id (from files) and any by key."""

    def __init__(self, procedures: Iterable[Procedure] = (), default: str = "spso-mchp"):
        self.default = default
        self._current: dict[str, Procedure] = {}
        self._by_key: dict[str, Procedure] = {}
        for procedure in procedures:
            self.add(procedure, current=True)

    def add(self, procedure: Procedure, current: bool = False) -> None:
        """Know this version; `current` makes it the one new cases get."""
        self._by_key[procedure.key] = procedure
        if current:
            self._current[procedure.id] = procedure

    def add_document(self, document: dict[str, Any]) -> Procedure:
        """Know a stored document (from the database) without making it current."""
        procedure = parse_procedure(document, f"stored document {document.get('id')!r}")
        self.add(procedure)
        return procedure

    def alias(self, key: str, procedure: Procedure) -> None:
        """Know `procedure` under a stored key as well as its own."""
        self._by_key[key] = procedure

    def current(self, procedure_id: str | None) -> Procedure | None:
        """The version new cases of `procedure_id` (or the default) are received under."""
        return self._current.get(procedure_id or self.default)

    def get(self, key: str) -> Procedure:
        """The exact version a case was received under."""
        try:
            return self._by_key[key]
        except KeyError:
            raise ProcedureError(f"procedure version {key!r} is not known (its document is missing)") from None

    def ids(self) -> list[str]:
        """Ids of the current procedures."""
        return sorted(self._current)
