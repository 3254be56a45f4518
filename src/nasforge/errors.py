"""The one error type a person can act on.

Every problem with a user's input (a configuration, a dataset archive, a
release, a query, a table a phase wrote) is a ``NasforgeError`` whose message
names the file or value and the fix. The command line prints it as one line
and exits 2 (``exit_code``); anything else is a bug in nasforge and keeps its
traceback. Each subclass also keeps the builtin type callers of the Python API
already catch (``ValueError`` for bad values, ``FileNotFoundError`` for a
missing input).
"""

from __future__ import annotations


class NasforgeError(Exception):
    """A problem with the user's input or files; the message says which and what to do."""

    exit_code = 2
    label = "error"  # how the command line introduces the message


class InputError(NasforgeError, ValueError):
    """A value (an option, an arch, a setting, a table's content) nasforge cannot use."""


class MissingInputError(NasforgeError, FileNotFoundError):
    """A file or folder a step needs is not there; the message names the step that writes it."""


class MachineError(NasforgeError, RuntimeError):
    """This machine cannot compute the promised bytes (its CPU lacks the pinned instruction set, torch
    ignored a pinned setting); the message says what to change."""
