"""Escalation's worker: follows the history (deadline logic arrives with its issue)."""

from services.common.worker import HistoryWorker


class EscalationWorker(HistoryWorker):
    """Keeps every complaint's deadlines from the history."""

    name = "escalation"
