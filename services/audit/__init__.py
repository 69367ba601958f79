"""Audit: replay the history, prove the live state, publish the period report, tell one case's story."""
