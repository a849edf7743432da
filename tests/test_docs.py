"""Every command has help with an example and is in the README, with its options; every setting
is in the README's configuration table."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import typer

from fulfil.cli import app
from fulfil.config import SETTINGS
from tests.conftest import REPOSITORY

pytestmark = pytest.mark.unit

README = (REPOSITORY / "README.md").read_text(encoding="utf-8")


def commands() -> Iterator[tuple[str, object]]:
    """(path, command) for every runnable command, e.g. ("labels create", <Command>)."""
    root = typer.main.get_command(app)

    def walk(prefix: str, group: object) -> Iterator[tuple[str, object]]:
        subcommands = getattr(group, "commands", None) or {}
        for name, command in subcommands.items():
            path = f"{prefix} {name}".strip()
            if getattr(command, "commands", None):
                if getattr(command, "invoke_without_command", False):
                    yield path, command
                yield from walk(path, command)
            else:
                yield path, command

    yield from walk("", root)


ALL = sorted(commands(), key=lambda item: item[0])


def test_the_command_tree_is_what_the_readme_promises() -> None:
    names = {path for path, _ in ALL}
    assert {
        "db migrate",
        "labels create",
        "tracking push",
        "orders import",
        "demo",
        "status",
        "calls",
    } <= names


@pytest.mark.parametrize(("path", "command"), ALL, ids=[path for path, _ in ALL])
def test_every_command_has_help_with_an_example(path: str, command: object) -> None:
    help_text = getattr(command, "help", None) or ""
    assert help_text.strip(), f"`fulfil {path}` has no help"
    assert "Example" in help_text, f"`fulfil {path}` help has no example"
    assert f"fulfil {path}" in help_text, f"`fulfil {path}` help's example does not show the command"


@pytest.mark.parametrize(("path", "command"), ALL, ids=[path for path, _ in ALL])
def test_every_command_and_option_is_in_the_readme(path: str, command: object) -> None:
    assert f"fulfil {path}" in README, f"`fulfil {path}` is missing from README.md"
    for param in getattr(command, "params", []):
        for option in getattr(param, "opts", []):
            if option.startswith("--") and option not in ("--help",):
                assert option in README, f"`fulfil {path} {option}` is missing from README.md"


@pytest.mark.parametrize("spec", SETTINGS, ids=[spec.env for spec in SETTINGS])
def test_every_setting_is_in_the_configuration_table(spec: object) -> None:
    env = spec.env  # type: ignore[attr-defined]
    assert re.search(rf"^\| `{env}` \|", README, re.M), (
        f"{env} is missing from the README's configuration table"
    )


@pytest.mark.parametrize("code", ["0", "1", "2", "3", "75"])
def test_every_exit_code_is_documented(code: str) -> None:
    assert re.search(rf"^\| {code} \|", README, re.M)
