"""Exception types shared by every balerc package.

They subclass builtins (as numcodecs does) so callers can catch ``ValueError`` or
``OSError`` without importing balerc, and every message names the file and the fix.
"""

from __future__ import annotations


class BalercError(Exception):
    """Base of every error balerc raises on purpose; the CLI prints it as one line."""


class InputError(BalercError, ValueError):
    """The user's data or arguments cannot be used as given (message says why and how)."""


class ContainerError(BalercError, ValueError):
    """A .balerc file is not what it should be (wrong magic, version, truncated, ...)."""


class ChecksumError(ContainerError):
    """Bytes on disk do not match their recorded checksum; names the chunk and stream."""

    def __init__(self, message: str, chunk: int | None = None, stream: str | None = None):
        super().__init__(message)
        self.chunk = chunk
        self.stream = stream


class FormatVersionError(ContainerError):
    """The file was written by a newer or unknown container format version."""


class UnsupportedFeatureError(ContainerError):
    """The file needs a feature this reader does not implement."""


class MissingDependencyError(BalercError, ImportError):
    """An optional package is needed for this operation; the message has the pip command."""
