"""The library's own exception types.

Every error that comes from a bad value (a user's argument or a checkpoint's content) is a
subclass of ``HfModularError`` *and* of ``ValueError``, so callers can catch either the
specific type or the generic one they already handle.
"""


class HfModularError(ValueError):
    """Base class of every error hf_modular raises on bad input."""


class AssemblyError(HfModularError):
    """An ``assemble`` spec or plan that is malformed or that this model cannot build."""


class ConfigError(HfModularError):
    """A configuration field with a wrong type or an out-of-range value."""


class CheckpointError(HfModularError):
    """A checkpoint that lacks weights the requested model needs, or that cannot be read safely."""


class DataError(HfModularError):
    """Training or evaluation data that cannot be used as given (empty, too long, ...)."""
