"""Procedure files: the built-in ones load, bad files fail with a clear message, versions are kept apart."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.deadlines.procedure_files import BUILT_IN, load_book, load_file
from services.deadlines.procedures import ProcedureError, parse_procedure


def _raw(name: str = "spso-mchp") -> dict:
    return yaml.safe_load((BUILT_IN / f"{name}.yaml").read_text())


def test_built_in_procedures_hold_the_contract_timescales() -> None:
    book = load_book()
    spso, dundee = book.current("spso-mchp"), book.current("dundee-2011")
    assert spso is not None and dundee is not None
    assert [(s.id, s.acknowledge, s.respond) for s in spso.stages] == [("stage1", None, 5), ("stage2", 3, 20)]
    assert spso.stage("stage1").max_extension == 10  # type: ignore[union-attr]
    assert [(s.id, s.acknowledge, s.respond) for s in dundee.stages][:2] == [("level1", 5, 14), ("level2", 5, 28)]
    assert dundee.stage("committee").respond == 56  # type: ignore[union-attr]
    assert dundee.serious_stage == "level2" and spso.serious_stage == "stage2"
    assert spso.learning.days == 20 and dundee.learning_calendar().kind == "working_days"
    assert book.current(None) is spso


def test_a_day_count_that_is_not_a_whole_number_names_the_file_stage_and_value() -> None:
    raw = _raw()
    raw["stages"][1]["respond"] = "20d"
    with pytest.raises(ProcedureError) as err:
        parse_procedure(raw, "spso.yaml")
    assert str(err.value) == "procedure file spso.yaml: stage2.respond must be a whole number of days, got '20d'"


@pytest.mark.parametrize("change, expected", [
    (lambda r: r.pop("calendar"), "calendar is required"),
    (lambda r: r.update(serious_stage="stage9"), "serious_stage 'stage9' is not one of the stages"),
    (lambda r: r["calendar"].pop("region"), "working_days needs a region"),
    (lambda r: r.update(colour="red"), "colour is not a known field"),
    (lambda r: r["stages"].append(dict(r["stages"][0])), "stage ids must be unique"),
])
def test_invalid_files_are_refused_with_what_is_wrong(change, expected: str) -> None:  # type: ignore[no-untyped-def]
    raw = _raw()
    change(raw)
    with pytest.raises(ProcedureError, match=expected):
        parse_procedure(raw, "x.yaml")


def test_unreadable_yaml_is_a_procedure_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed")
    with pytest.raises(ProcedureError, match="bad.yaml: cannot be read as YAML"):
        load_file(bad)


def test_operator_folder_adds_procedures_and_a_changed_file_is_a_new_key(tmp_path: Path) -> None:
    raw = _raw()
    original_key = load_book().current("spso-mchp").key  # type: ignore[union-attr]
    raw["stages"][0]["respond"] = 7
    (tmp_path / "spso-local.yaml").write_text(yaml.safe_dump(raw))
    other = dict(_raw(), id="housing-2024")
    (tmp_path / "housing.yaml").write_text(yaml.safe_dump(other))
    book = load_book(tmp_path)
    assert "housing-2024" in book.ids()
    changed = book.current("spso-mchp")
    assert changed is not None and changed.key != original_key and changed.stage("stage1").respond == 7  # type: ignore[union-attr]
    book.add_document(load_book().current("spso-mchp").document())  # type: ignore[union-attr]
    assert book.get(original_key).stage("stage1").respond == 5  # type: ignore[union-attr]


def test_missing_operator_folder_or_unknown_default_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ProcedureError, match="does not exist"):
        load_book(tmp_path / "nope")
    with pytest.raises(ProcedureError, match="default procedure 'nope'"):
        load_book(default="nope")


def test_escalation_rules_come_from_the_file() -> None:
    dundee = load_book().current("dundee-2011")
    assert dundee is not None
    assert dundee.escalation_refusal("level1", "level2") is None
    assert dundee.escalation_refusal("level2", "committee") is None  # director bypassable on request
    assert "may not be bypassed" in (dundee.escalation_refusal("level1", "director") or "")
    assert "last stage" in (dundee.escalation_refusal("committee", "committee") or "")
    assert "not a stage" in (dundee.escalation_refusal("level1", "stage2") or "")


def test_the_model_a_procedure_follows_is_data_and_moves_no_case_to_another_version() -> None:
    """`model: spso` says whose published indicators a procedure's cases count in (read by `indicators`);
    it moves no deadline, so it is not part of the version's key."""
    book = load_book()
    models = {i: book.current(i).model for i in book.ids()}  # type: ignore[union-attr]
    assert models["spso-mchp"] == "spso"
    assert [models[i] for i in ("dundee-2011", "england-asc-2009", "england-children-2006")] == [None, None, None]
    raw = _raw()
    with_model = parse_procedure(raw, "spso.yaml")
    raw.pop("model")
    without = parse_procedure(raw, "spso.yaml")
    assert with_model.key == without.key and without.model is None
    assert "model" not in without.document() and with_model.document()["model"] == "spso"
    with pytest.raises(ProcedureError, match="model"):
        parse_procedure({**raw, "model": "SPSO model!"}, "spso.yaml")
