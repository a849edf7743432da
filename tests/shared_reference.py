"""Where the shared reference material (../shared) is, for tests that read it.

Tests that need it call ``shared_path(...)``: when the directory is absent they skip with the
reason, unless FULFIL_REQUIRE_SHARED=1 (set by .ci/run), where its absence fails the test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent


def shared_root() -> Path | None:
    configured = os.environ.get("FULFIL_SHARED_DIR")
    candidates = [Path(configured)] if configured else []
    candidates.append(REPOSITORY.parent / "shared")
    for candidate in candidates:
        if (candidate / "reference").is_dir():
            return candidate
    return None


def shared_path(*parts: str) -> Path:
    root = shared_root()
    if root is None:
        message = "../shared (reference XSDs and samples) is not beside the repository"
        if os.environ.get("FULFIL_REQUIRE_SHARED") == "1":
            pytest.fail(f"{message}, and FULFIL_REQUIRE_SHARED=1 requires it")
        pytest.skip(message)
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"{path} is missing from the shared reference material")
    return path


def xsd_dir() -> Path:
    return shared_path("reference", "canadapost", "xsd")


def canadapost_samples() -> Path:
    return shared_path("reference", "canadapost", "samples")


def mirakl_samples() -> Path:
    return shared_path("reference", "mirakl", "samples")
