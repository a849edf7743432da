"""An installed (non-editable) fulfil carries its SQL files."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPOSITORY


@pytest.mark.slow
def test_the_wheel_carries_the_sql_files_and_finds_them_when_installed(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=REPOSITORY,
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("fulfil-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"fulfil/sql/{p.relative_to(REPOSITORY / 'sql')}" for p in (REPOSITORY / "sql").rglob("*.sql")
    }
    assert expected
    assert expected <= names

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    probe = (
        "from fulfil.db import sql_dir; from fulfil.migrations import discover; "
        "print(sql_dir(), len(discover()))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    location, count = result.stdout.split()
    assert Path(location) == target / "fulfil" / "sql"
    assert int(count) == len(list((REPOSITORY / "sql").glob("[0-9][0-9][0-9][0-9]_*.sql")))
