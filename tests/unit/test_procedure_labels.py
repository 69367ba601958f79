"""The `procedure` label of the deadline metrics: a case's procedure id, from the bounded set of procedure files."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.deadlines.labels import known_deadlines, procedure_label
from services.deadlines.procedure_files import load_book
from services.escalation.metrics import BREACHED_LABELS, DEADLINES_OVERDUE, BreachCounter


def test_a_procedure_version_is_labelled_by_its_id() -> None:
    book = load_book()
    procedure = book.current("spso-mchp")
    assert procedure is not None and procedure_label(procedure.key) == "spso-mchp"


def test_every_procedures_deadlines_start_at_zero_each_under_its_own_procedure() -> None:
    deadlines = known_deadlines(load_book())
    # the same stage id in two procedures is two series: a breach names the procedure it was under
    assert {("spso-mchp", "stage1", "respond"), ("england-children-2006", "stage1", "respond"),
            ("dundee-2011", "committee", "respond"), ("england-asc-2009", "local", "acknowledge")} <= deadlines
    assert ("spso-mchp", "stage1", "acknowledge") not in deadlines  # frontline sets no acknowledgement


def test_the_breach_counter_and_the_overdue_gauge_carry_the_procedure() -> None:
    counter = BreachCounter()
    counter.set({("spso-mchp", "stage1", "respond", "0"): 2})
    registry = CollectorRegistry()
    registry.register(counter)
    labels = {"procedure": "spso-mchp", "stage": "stage1", "kind": "respond", "partition": "0"}
    assert registry.get_sample_value("casefeedback_deadlines_breached_total", labels) == 2
    assert BREACHED_LABELS[0] == "procedure"
    assert DEADLINES_OVERDUE._labelnames == ("procedure", "stage", "kind")
