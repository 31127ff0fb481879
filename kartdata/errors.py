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
