"""User-facing errors. The CLI prints these as one line and exits non-zero, never a traceback."""


class FaceanimError(Exception):
    """An error caused by the user's input (file, option, environment), with a message fit to show as is."""


class CheckpointError(FaceanimError):
    """A checkpoint is unreadable, truncated, of the wrong kind, or holds an unsupported network."""


class UnsafePickleError(CheckpointError):
    """A pickle asked to import or call something outside the allow-list; nothing of it was run."""
