"""The one deadline mechanism shared by escalation and learning: procedures, calendars, timers."""
