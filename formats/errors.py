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


class IncompleteFileError(ContainerError):
    """The file has no valid footer (its writer died, or it was truncated or damaged at
    the end); `recover=True` / `--recover` reads the longest valid prefix of chunks."""


class ChunkOrderError(ContainerError):
    """A chunk is not where the footer and the chunk sequence say it is (swapped,
    duplicated, dropped or renumbered chunks)."""


class LimitError(ContainerError):
    """A size or count in the file exceeds a documented limit or what the file's own bytes
    can hold (decompression bombs, absurd row counts): refused before allocating."""


class TimeLimitError(LimitError):
    """Decoding ran past its time limit (`timeout=`, `--timeout`, BALERC_DECODE_TIMEOUT):
    the file may be sound, so `recover` does not turn this into a shorter table."""


class SchemaError(ContainerError):
    """A header, chunk descriptor, footer or coder record is malformed (missing or mistyped
    keys, out-of-range values, unknown mode letters, duplicate column names)."""


class UnsafeModelError(ContainerError):
    """An ONNX graph (embedded or from -m) is not one balerc's exporter writes: refused
    before ONNX Runtime sees it; the message names the check that failed."""
