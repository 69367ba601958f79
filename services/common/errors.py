"""The one base exception of casefeedback; adapters translate driver errors into these."""


class CasefeedbackError(Exception):
    """Base of every error casefeedback raises on purpose."""


class ConfigurationError(CasefeedbackError):
    """A setting or file is wrong; the message says which and what to do."""


class InfrastructureError(CasefeedbackError):
    """The broker or the database could not be reached or started."""
