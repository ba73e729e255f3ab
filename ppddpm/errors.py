"""Errors a user can act on. The CLI prints their message without a traceback."""


class PPDDPMError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class CheckpointError(PPDDPMError):
    """A checkpoint is missing, corrupt, or does not match the configured model."""


class DatasetError(PPDDPMError):
    """A data set is missing, cannot be downloaded, or is empty."""


class TrainingDiverged(PPDDPMError):
    """The loss became NaN or infinite."""


class ConfigError(PPDDPMError, ValueError):
    """A configuration value is wrong; the message names it and the fix."""
