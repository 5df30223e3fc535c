"""Errors as data for a person.

Every error a user can cause is an :class:`AmplifierError`. The CLI catches them at one boundary, prints
``file:line:col: message`` lines (see :class:`Problem`) and returns a named :class:`ExitCode`. A traceback only
appears with ``--debug``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class ExitCode(enum.IntEnum):
    """The process exit codes, documented in the README."""

    OK = 0
    FAILURE = 1  # an unexpected internal error (a bug): please report it
    INVALID = 2  # the campaign files (or the command line) have problems
    ACCOUNT = 3  # an account's credentials or server failed
    PUBLISH = 4  # a post could not be published
    STATE = 5  # the state folder cannot be created, read or written
    NOTIFY = 6  # an alert destination did not take a message (`notify --test`), or its URL is not set


@dataclass(frozen=True, order=True)
class Problem:
    """One problem in a campaign file, located at the YAML node (or template line) that causes it."""

    file: str
    line: int  # 1-based
    col: int  # 1-based
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class AmplifierError(Exception):
    """Base of every error that is the user's to fix; its message is safe to print (no secrets)."""

    exit_code: ExitCode = ExitCode.FAILURE

    def lines(self) -> list[str]:
        return [str(self)]


class CampaignError(AmplifierError):
    """The campaign files have one or more problems; all of them are reported at once."""

    exit_code = ExitCode.INVALID

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class UsageError(AmplifierError):
    """A command-line argument is wrong (an unparseable time, an unknown account id...)."""

    exit_code = ExitCode.INVALID


class StateError(AmplifierError):
    """The state folder cannot be created, read or written."""

    exit_code = ExitCode.STATE


class CredentialsError(AmplifierError):
    """A secret is missing or rejected. The message names the variable, never the value."""

    exit_code = ExitCode.ACCOUNT
