"""Learning's contract metrics (section 7) and the complaint patterns of seed 000 §4.3.4; labels bounded by the
labels file (`services/common/figures.py` folds them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

STAGES_OPEN = Gauge("casefeedback_learning_stages_open", "Open learning stages on this worker's partitions")
STAGES_OVERDUE = Gauge("casefeedback_learning_stages_overdue", "Open learning stages past due (owned partitions)")
ACTIONS = Counter("casefeedback_learning_actions", "Learning actions this worker applied, by level and state",
                  ["level", "state", "service_area"])
THEMES_TOTAL = Counter("casefeedback_complaint_themes", "Complaint themes received, by service area",
                       ["service_area", "theme"])
PLANS = Counter("casefeedback_learning_plans_submitted", "Learning plans submitted, by whether every action was "
                "completed and whether on time", ["complete", "late"])
