"""A local Canada Post + Best Buy (Mirakl) server that speaks the real wire formats, with faults.

``from fulfil.sandbox import Sandbox, SandboxConfig, Faults``. The names are loaded on first use,
so importing ``fulfil.sandbox.cli`` (which ``fulfil --help`` does) pulls in neither lxml nor the
HTTP server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fulfil.sandbox.config import SandboxConfig
    from fulfil.sandbox.faults import Faults
    from fulfil.sandbox.sandbox import Sandbox

__all__ = ["Faults", "Sandbox", "SandboxConfig"]


def __getattr__(name: str) -> Any:
    if name == "Sandbox":
        from fulfil.sandbox.sandbox import Sandbox

        return Sandbox
    if name == "SandboxConfig":
        from fulfil.sandbox.config import SandboxConfig

        return SandboxConfig
    if name == "Faults":
        from fulfil.sandbox.faults import Faults

        return Faults
    raise AttributeError(f"module 'fulfil.sandbox' has no attribute {name!r}")
