"""Metrics' worker: follows the history (rolling windows arrive with their issue)."""

from services.common.worker import HistoryWorker


class MetricsWorker(HistoryWorker):
    """Keeps rolling satisfaction, timeliness and volume figures for Prometheus."""

    name = "metrics"
