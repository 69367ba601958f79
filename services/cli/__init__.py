"""The `casefeedback` command line (contract section 8)."""
