"""Exceptions raised for bad user input.

Why a module of its own: every layer (data, models, CLI) must report bad input with the file and
field that caused it, and the CLI turns these into one-line messages instead of tracebacks.
"""
from __future__ import annotations


class PrunePoseError(Exception):
    """Base class for errors caused by user input (files, configs, tensors of the wrong shape)."""


class DataError(PrunePoseError, ValueError):
    """A data file or one of its fields is missing, unreadable or inconsistent.

    The message always names the file and, where known, the field/record at fault.
    """


class ConfigError(PrunePoseError, ValueError):
    """A configuration value is missing or inconsistent (unknown model name, wrong image size, ...)."""
