"""Building and parsing the command line without what a command does not use (issue 11, start-up).

Two shortcuts through typer, each falling back to typer's own way when its internals are not what
they were written for (then tests/test_startup.py names the modules that come back):

* ``with_only_the_command``: typer builds the click command of every command group at start-up;
  given the command line, only the one it names is built (about 10 ms).
* ``read_plain_values_without_pydantic``: typer 0.29 reads every option value through a pydantic
  TypeAdapter, so every command imported pydantic (~50 ms); a plain bool, int or str value, and
  a list of strings (a repeatable option, an argument of several values), is read here instead,
  and anything else still goes to typer, with typer's messages.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import typer

# Longer strings of digits are left to typer: int() and pydantic part ways on very long ones.
_MOST_DIGITS_READ_PLAINLY = 18


class PlainValue:
    """What typer's coercion makes of one bool, int or str value, without pydantic: a bool or a str
    is itself, an int or a string of ASCII digits is the number, when within the option's min and
    max. Anything else (a sign, spaces, out of bounds, not a number, "yes" for a bool) goes to
    typer's own coercion, so what it accepts and the messages it refuses with stay typer's.
    tests/test_startup.py checks both."""

    def __init__(self, descriptor: Any) -> None:
        self.descriptor = descriptor
        self._typers: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:
            # typer's answers for a value not given: None for one value, () for a list.
            return () if self.descriptor.annotation == list[str] else None
        plain = self.plain(value)
        if plain is not None:
            return plain
        if self._typers is None:
            from typer._coercion import build_runtime_param

            self._typers = build_runtime_param(self.descriptor)
        return self._typers.coerce(value, param=param, ctx=ctx)

    def plain(self, value: Any) -> bool | int | str | list[str] | None:
        """The value, when it can be read without pydantic; else None."""
        annotation = self.descriptor.annotation
        if annotation == list[str]:
            # A repeatable option or an argument of several values: click hands them over as a
            # tuple of strings, typer makes it a list.
            if type(value) is tuple and all(type(item) is str for item in value):
                return list(value)
            return None
        if annotation is str or annotation is bool:
            return value if type(value) is annotation else None
        if type(value) is int:
            number = value
        elif type(value) is str and value.isascii() and value.isdigit():
            if len(value) > _MOST_DIGITS_READ_PLAINLY:
                return None
            number = int(value)
        else:
            return None
        info = self.descriptor.parameter_info
        if (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
            return None
        return number


def read_plain_values_without_pydantic(command: Any) -> None:
    """Typer reads every option value but a flag's True or False through a pydantic TypeAdapter
    (built on first use, even for a value not given), and importing pydantic was a fifth of
    `fulfil status` (`--verbose` and `--stale-hours` are ints, -h/--help's value is None). So each
    bool, int and str option and argument of one value, and each of several strings, in
    ``command`` and every subcommand, help options included, reads plain values itself
    (PlainValue) and leaves the rest to typer. Nothing changes once pydantic is imported, or with
    a typer whose parameters are not built this way (then typer's own coercion, as before:
    tests/test_startup.py would name pydantic)."""
    if "pydantic" in sys.modules:
        return
    for subcommand in _commands_within(command):
        for param in subcommand.params:
            _read_plainly(param)
        _read_help_option_plainly(subcommand)


def _read_plainly(param: Any) -> None:
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or getattr(param, "_runtime_param", False) is not None:
        return  # not typer's, or its coercion already built
    info = getattr(descriptor, "parameter_info", None)
    annotation = getattr(descriptor, "annotation", None)
    one_value = annotation in (bool, int, str) and param.nargs == 1 and not param.multiple
    strings = annotation == list[str] and (param.nargs == -1 or (param.nargs == 1 and param.multiple))
    if (
        (one_value or strings)
        and getattr(descriptor, "file_annotation", True) is None
        and info is not None
        and getattr(info, "parser", True) is None
        and not getattr(info, "clamp", True)
    ):
        param._runtime_param = PlainValue(descriptor)


def _read_help_option_plainly(command: Any) -> None:
    # A command makes its help option when it first parses (the names come from the context).
    typers = getattr(command, "get_help_option", None)
    if typers is None:
        return

    def get_help_option(ctx: Any) -> Any:
        option = typers(ctx)
        if option is not None:
            _read_plainly(option)
        return option

    command.get_help_option = get_help_option


def _commands_within(command: Any) -> Iterable[Any]:
    yield command
    for subcommand in getattr(command, "commands", {}).values():
        yield from _commands_within(subcommand)


def with_only_the_command(application: typer.Typer, args: list[str]) -> typer.Typer:
    """``application`` with only the root command or group that ``args`` name (after root flags
    alone), so that typer builds that one's click command and not every command's (10 ms, a
    thirtieth of `fulfil status`). The whole application for anything else: no command, help,
    another root option, a name that is no command (so usage errors offer them all)."""
    name = _command_word(args)
    if name is None:
        return application
    commands = [info for info in application.registered_commands if info.name == name]
    groups = [info for info in application.registered_groups if info.name == name]
    if len(commands) + len(groups) != 1:
        return application
    import copy

    one = copy.copy(application)  # the root's callback and settings, shared
    one.registered_commands = commands
    one.registered_groups = groups
    return one


# The root options that take a value (see ``root``): the word after one is its value.
_ROOT_OPTIONS_WITH_A_VALUE = ("--metrics-file",)


def _is_verbose_flag(arg: str) -> bool:
    return arg == "--verbose" or (len(arg) > 1 and arg[0] == "-" and set(arg[1:]) == {"v"})


def hoist_root_options(args: list[str]) -> list[str]:
    """The root options (-v, --verbose, --metrics-file PATH) given after the command moved before
    it, so `fulfil status -v` means `fulfil -v status` (--json is every command's own option
    too). Nothing after a ``--`` is touched."""
    hoisted: list[str] = []
    rest: list[str] = []
    seen_command = False
    words = iter(args)
    for arg in words:
        if arg == "--":
            rest.append(arg)
            rest.extend(words)
            break
        if not seen_command:
            if not arg.startswith("-"):
                seen_command = True
            elif arg in _ROOT_OPTIONS_WITH_A_VALUE:
                rest.append(arg)
                rest.append(next(words, ""))
                continue
            rest.append(arg)
            continue
        if _is_verbose_flag(arg) or arg.startswith(tuple(f"{o}=" for o in _ROOT_OPTIONS_WITH_A_VALUE)):
            hoisted.append(arg)
        elif arg in _ROOT_OPTIONS_WITH_A_VALUE:
            hoisted.extend((arg, next(words, "")))
        else:
            rest.append(arg)
    return hoisted + rest


def _command_word(args: list[str]) -> str | None:
    """The first argument, when only root flags (and ``--metrics-file PATH``) come before it."""
    words = iter(args)
    for arg in words:
        if not arg.startswith("-"):
            return arg
        if arg in _ROOT_OPTIONS_WITH_A_VALUE:
            next(words, None)
            continue
        if arg.startswith(tuple(f"{option}=" for option in _ROOT_OPTIONS_WITH_A_VALUE)):
            continue
        if arg not in ("--json", "--verbose") and not (len(arg) > 1 and set(arg[1:]) == {"v"}):
            return None
    return None
