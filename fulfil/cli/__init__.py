"""The `fulfil` command line: parse, call the library, render. No SQL and no HTTP here.

Only the standard library, typer and fulfil's light modules are imported at start-up; database,
HTTP and XML libraries are imported by the commands that use them, so `fulfil --help` stays fast
under cron and in pipelines. Each command group registers itself on ``app`` when imported.
"""

from fulfil.cli import db, labels, orders, tracking
from fulfil.cli.app import app, main

__all__ = ["app", "db", "labels", "main", "orders", "tracking"]
