"""Exceptions with messages that name the file, key or parameter at fault."""


class KDMRIError(Exception):
    """Base class for every error kdmri raises on bad input."""


class DataError(KDMRIError, ValueError):
    """A data file or folder is missing, corrupt or not in the expected layout."""


class ConfigError(KDMRIError, ValueError):
    """A configuration value or parameter file is invalid."""


class WaitTimeout(KDMRIError, TimeoutError):
    """A wait for another process (a lock holder, the peers of a distributed run) timed out."""
