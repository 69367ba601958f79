"""Intake: the only door into the history. Validates, de-duplicates, dead-letters and records inbound events."""
