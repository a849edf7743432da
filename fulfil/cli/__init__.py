"""The `fulfil` command line: parse, call the library, render. No SQL and no HTTP here.

Only the standard library, typer and fulfil's light modules are imported at start-up; database,
HTTP and XML libraries are imported by the commands that use them, so `fulfil --help` stays fast
under cron and in pipelines. Each command group registers itself on ``app`` when imported.
"""

from fulfil.cli import db, demo, labels, orders, reports, tracking
from fulfil.cli.app import app, main
from fulfil.sandbox.cli import sandbox_app

app.add_typer(sandbox_app, name="sandbox")

__all__ = ["app", "db", "demo", "labels", "main", "orders", "reports", "tracking"]
