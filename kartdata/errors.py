"""Errors that the CLI turns into one line and an exit code (never a traceback)."""

from __future__ import annotations


class KartError(Exception):
    """Base of kartkit's user-facing errors; ``str(err)`` is the one line to print.

    The message names the file and, where there is one, the line or frame.
    """

    exit_code = 2


class SourceError(KartError):
    """A recording that cannot be read as it claims to be (bad row, bad image, …)."""


class DatasetError(KartError):
    """A dataset (manifest + shards) that is missing, inconsistent or corrupt."""


class UntrustedPickleError(SourceError):
    """A pickle-based recording opened without the explicit trust flag."""


class ModelError(KartError):
    """A training run or exported model that cannot be used as it is (issue 5)."""


def fault(e: OSError | MemoryError, dataset: str) -> DatasetError:
    """A system fault met while writing ``dataset`` (a full disk, a read-only
    filesystem, a permission refused, memory run out) as one line: the path it
    happened at, the system's reason, and that the dataset was left as it was.
    Callers raise it only where that is true: before the manifest is replaced."""
    if isinstance(e, MemoryError):
        path, reason = dataset, "out of memory"
    else:
        path = e.filename or dataset
        reason = e.strerror or str(e) or type(e).__name__
        reason = " ".join(reason.split())  # one line, whatever the library wrote
        reason = reason[:1].lower() + reason[1:]
    return DatasetError(f"{path}: {reason}; nothing was added to the dataset {dataset}")
