"""Exceptions that the command line reports as one line instead of a traceback."""


class UserError(Exception):
    """Bad input (data, configuration, arguments): reported as one line with exit code 2."""


class DataError(UserError):
    """A dataset that is not in the emg2pose format, or not usable for the requested evaluation."""


class ConfigError(UserError):
    """An unknown configuration key, a value of the wrong type, or an inconsistent combination."""


class DiskFull(UserError):
    """No space left (ENOSPC, or a quota: EDQUOT) where a file or directory was being written; what was half
    written is removed first."""


class TrainingDiverged(RuntimeError):
    """The loss became non-finite; the run is recorded as failed with this message."""
