"""Learning's worker: follows the history (learning-stage logic arrives with its issue)."""

from services.common.worker import HistoryWorker


class LearningWorker(HistoryWorker):
    """Opens and tracks the learning stage after each closed complaint."""

    name = "learning"
