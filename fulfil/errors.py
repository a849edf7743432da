"""Errors the command line turns into one clear line and an exit code.

Exit codes are part of the interface (README, "Exit codes"): scripts and cron branch on them.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_SOME_FAILED = 3
EXIT_LOCKED = 75


class FulfilError(Exception):
    """An expected failure: printed as one line to stderr, no traceback unless -v."""

    exit_code = EXIT_UNEXPECTED


class ConfigError(FulfilError):
    """A setting is missing or invalid, or a credential was refused. Names the variable or key."""

    exit_code = EXIT_USAGE


class UsageError(FulfilError):
    """The command line itself is wrong (bad option combination, unreadable input file)."""

    exit_code = EXIT_USAGE


class DatabaseError(FulfilError):
    """The database cannot be reached or is not in the shape fulfil needs."""

    exit_code = EXIT_USAGE


class MigrationError(DatabaseError):
    """A migration cannot be applied, or an applied migration file has changed since."""


class NothingToDo(FulfilError):
    """The command was asked for nothing (`--order -` and nothing on stdin): done, exit 0. A
    pipeline whose first step found nothing to pass on is not a failure of its second."""

    exit_code = EXIT_OK


class LockedError(FulfilError):
    """Another run holds a lock this command needs."""

    exit_code = EXIT_LOCKED
