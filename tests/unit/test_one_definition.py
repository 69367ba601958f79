"""Every figure shown in more than one output has one definition: the metrics service, the period report,
replay and the dashboards agree on the same history."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from deploy.grafana.build_dashboards import DASHBOARDS
from services.audit.report import Period, build_report
from services.cli import demo
from services.common.figures import answer_key, is_positive, positive_keys, upheld_rate
from services.common.labels import load_labels
from services.common.settings import Settings, load_settings
from services.deadlines.procedure_files import load_book
from services.escalation.worker import EscalationWorker
from services.metrics import domain as d
from services.metrics.projection import label_sets
from services.metrics.satisfaction import satisfaction
from tests.unit import metrics_support as support

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
PERIOD = Period(date(2026, 3, 1), date(2026, 3, 31))
BOOK, LABELS = load_book(), load_labels()


def ev(type_: str, subject: str, data: dict[str, Any], time_: str = "2026-03-10T10:00:00+00:00") -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"{subject}-{type_}", "source": "t", "type": type_, "subject": subject,
            "time": time_, "data": data}


def received(subject: str, area: str = "housing", themes: list[str] | None = None) -> dict[str, Any]:
    return ev("complaint.received", subject, {"service_area": area, "channel": "web", "stage": "stage1",
                                              "serious": False, "themes": themes or [], "procedure": "spso-mchp"})


def survey(positive: list[Any], scale: str = "likert5") -> dict[str, Any]:
    return ev("survey.defined", "sv", {"title": "t", "questions": [
        {"question_id": "q", "text": "x", "scale": scale, "positive": positive}]}, "2026-03-01T10:00:00+00:00")


def response(subject: str, answer: Any, respondent: str = "service_user") -> dict[str, Any]:
    return ev("survey.response.submitted", subject, {"survey_id": "sv", "respondent_type": respondent,
                                                      "answers": {"q": answer}})


def report(history: list[dict[str, Any]]) -> dict[str, Any]:
    return build_report(history, PERIOD, BOOK, LABELS)


def live_satisfaction(history: list[dict[str, Any]]) -> tuple[dict[Any, int], dict[Any, int]]:
    snap = support.replay((0, seq, body) for seq, body in enumerate(history, start=1))
    got = satisfaction(snap.view().buckets, snap.surveys, support.SETS, d.today_of(NOW))
    return ({k: n for k, n in got.responses.items() if k[3] == "30d"},
            {k: n for k, n in got.positive.items() if k[3] == "30d"})


def test_the_dashboards_upheld_rate_divides_the_reports_numerator_by_its_denominator() -> None:
    panels = {p.title: p.targets for _, (_, ps) in DASHBOARDS.items() for p in ps}
    expr = panels["Upheld rate (365 days)"][0][0]
    assert 'outcome=~"upheld"' in expr.split(" / ")[0], "partially upheld is not upheld"
    assert 'outcome=~"upheld|partially_upheld|not_upheld|resolved"' in expr.split(" / ")[1]
    history = [received("a"), ev("complaint.responded", "a", {"stage": "stage1", "outcome": "partially_upheld"}),
               received("b"), ev("complaint.responded", "b", {"stage": "stage1", "outcome": "partially_upheld"})]
    assert report(history)["complaints"]["upheld_rate"] == upheld_rate({"partially_upheld": 2}) == 0.0


@pytest.mark.parametrize(("positive", "answers", "expected"), [
    (["yes"], ["Yes", " yes", "YES", True, "no"], 4),
    ([4, 5], [4, 5.0, "4", 3, "2"], 3),  # a council's 1-5 survey whose positive answers are JSON numbers
    (["4", "5"], [4.0, 5, " 5 ", 1, "x"], 3),
])
def test_satisfaction_counts_the_same_answers_positive_in_metrics_and_in_the_report(
        positive: list[Any], answers: list[Any], expected: int) -> None:
    history = [survey(positive, "yes_no" if positive == ["yes"] else "likert5"),
               *(response(f"r{i}", a) for i, a in enumerate(answers))]
    row = report(history)["satisfaction"][0]
    responses, positives = live_satisfaction(history)
    assert (row["responses"], row["positive"]) == (sum(responses.values()), sum(positives.values())) == (5, expected)


def test_an_answer_has_one_canonical_key() -> None:
    assert answer_key(4) == answer_key(4.0) == answer_key("4") == answer_key(" 4 ") == "4"
    assert answer_key("Yes") == answer_key("yes") == answer_key(True) == "yes"
    assert is_positive(5.0, positive_keys([4, 5])) and not is_positive("3", positive_keys([4, 5]))


def test_a_respondent_type_outside_the_labels_is_other_in_metrics_and_in_the_report() -> None:
    history = [survey(["4"]), response("r1", "4", "tenant")]
    responses, _ = live_satisfaction(history)
    assert {k[2] for k in responses} == {"other"}
    assert set(report(history)["satisfaction"][0]["by_respondent_type"]) == {"other"}


def test_service_areas_are_the_same_for_escalation_learning_metrics_report_and_demo() -> None:
    settings = Settings()
    escalation = EscalationWorker.__new__(EscalationWorker)
    escalation.settings = settings
    assert escalation._area("housing") == "housing", "housing is not 'other' in casefeedback_complaints_open"
    assert label_sets(settings).service_areas == frozenset(settings.labels.service_areas)
    assert report([received("a", "housing")])["complaints"]["by_service_area"] == {"housing": 1}
    rng, areas = random.Random(1), set()
    for _ in range(300):
        areas |= {e["data"]["service_area"] for e in demo.random_story(rng, NOW, settings.labels)
                  if "service_area" in e["data"]}
    assert areas <= set(settings.labels.service_areas)


def test_themes_are_folded_the_same_in_the_report_and_the_live_counter() -> None:
    history = [received("a", "housing", ["delay", "delay", "parking"])]
    assert report(history)["themes"] == {"housing": {"delay": 1, "other": 1}}
    assert LABELS.themes_of(["delay", "delay", "parking"]) == {"delay", "other"}


def test_stage_labels_come_from_the_procedures_in_metrics_as_in_escalation(tmp_path: Path) -> None:
    extra = (Path(__file__).parents[2] / "services/deadlines/procedures/spso-mchp.yaml").read_text()
    (tmp_path / "local.yaml").write_text(extra.replace("id: spso-mchp", "id: local-chp").replace("stage2", "review"))
    settings = load_settings({"CASEFEEDBACK_PROCEDURES_DIR": str(tmp_path)})
    sets = label_sets(settings)
    facts = d.facts_of(ev("complaint.received", "c", {"service_area": "housing", "stage": "review"}), sets)
    assert facts[0].labels == ("review", "housing")


def test_an_operator_edits_the_label_values_in_one_file(tmp_path: Path) -> None:
    path = tmp_path / "labels.yaml"
    path.write_text("service_areas: [libraries]\nrespondent_types: [tenant]\nthemes: [noise]\n")
    settings = load_settings({"CASEFEEDBACK_LABELS_FILE": str(path)})
    assert settings.labels.service_area("libraries") == "libraries"
    assert settings.labels.service_area("housing") == "other"
    assert label_sets(settings).respondent_types == {"tenant"}
