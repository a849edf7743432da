"""The sandbox plays the other side: the product never imports it, and it imports none of the product.

Only the CLI's ``sandbox`` command group and the demo may import ``fulfil.sandbox``; the sandbox
may use fulfil's small shared helpers (XML parsing) but nothing that fulfils orders, so a test
that passes against the sandbox cannot be passing because the sandbox borrowed fulfil's own code.
Imports are read from the source with ``ast``: at the top, inside functions and under
``TYPE_CHECKING`` alike, absolute and relative, and ``importlib.import_module`` with a literal.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import fulfil

pytestmark = pytest.mark.unit

PACKAGE_ROOT = Path(fulfil.__file__).parent
SANDBOX = "fulfil.sandbox"
# Importer -> the sandbox modules it may import (None: any of them).
SANDBOX_IMPORTERS: dict[str, frozenset[str] | None] = {
    "fulfil.cli": frozenset({"fulfil.sandbox.cli"}),  # registers the `fulfil sandbox` command group
    "fulfil.demo": None,  # `fulfil demo` runs the pipeline against a sandbox it starts
}
# What the sandbox must not reach, directly or through other fulfil modules.
PRODUCT_FOR_SANDBOX = ("fulfil.workflows", "fulfil.cli", "fulfil.services")


@dataclass(frozen=True)
class Import:
    importer: str  # dotted name of the module that imports
    path: Path
    line: int
    target: str  # dotted name of the module imported

    def where(self) -> str:
        return f"{self.importer} ({self.path}:{self.line}) imports {self.target}"


def module_names(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root``, by dotted name (a package by its own name)."""
    names: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _resolve_relative(importer: str, is_package: bool, level: int, module: str | None) -> str:
    base = importer.split(".")
    if not is_package:
        base.pop()
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def imports_of(importer: str, path: Path, known: dict[str, Path]) -> Iterator[Import]:
    """The modules one file imports; ``from package import name`` counts a submodule ``name``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(importer, path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                module = _resolve_relative(importer, is_package, node.level, node.module)
            else:
                module = node.module or ""
            yield Import(importer, path, node.lineno, module)
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                if submodule in known:
                    yield Import(importer, path, node.lineno, submodule)
        elif isinstance(node, ast.Call) and _is_import_module_call(node):
            argument = node.args[0]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                yield Import(importer, path, node.lineno, argument.value)


def _is_import_module_call(node: ast.Call) -> bool:
    function = node.func
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
    return name in ("import_module", "__import__") and bool(node.args)


def import_graph(root: Path) -> dict[str, list[Import]]:
    known = module_names(root)
    return {name: list(imports_of(name, path, known)) for name, path in known.items()}


def product_imports_of_sandbox(root: Path) -> list[Import]:
    """Imports of the sandbox by modules outside it that are not allowed to import it."""
    found: list[Import] = []
    for importer, imports in import_graph(root).items():
        if _within(importer, SANDBOX):
            continue
        allowed_importer = importer in SANDBOX_IMPORTERS
        allowed_targets = SANDBOX_IMPORTERS.get(importer)
        for item in imports:
            if not _within(item.target, SANDBOX):
                continue
            if allowed_importer and (allowed_targets is None or item.target in allowed_targets):
                continue
            found.append(item)
    return found


def sandbox_reaches_product(root: Path) -> list[list[Import]]:
    """For each product package the sandbox reaches, the shortest chain of imports that gets there."""
    graph = import_graph(root)
    starts = sorted(name for name in graph if _within(name, SANDBOX))
    seen = set(starts)
    frontier: list[tuple[str, list[Import]]] = [(start, []) for start in starts]
    chains: dict[str, list[Import]] = {}
    while frontier:
        current, chain = frontier.pop(0)
        for item in graph[current]:
            # Importing a.b.c runs a/__init__.py and a/b/__init__.py too.
            parts = item.target.split(".")
            for end in range(1, len(parts) + 1):
                target = ".".join(parts[:end])
                step = [*chain, Import(item.importer, item.path, item.line, target)]
                product = next((p for p in PRODUCT_FOR_SANDBOX if _within(target, p)), None)
                if product is not None:
                    chains.setdefault(product, step)
                    break
                if target in graph and target not in seen:
                    seen.add(target)
                    frontier.append((target, step))
    return [chains[product] for product in sorted(chains)]


def test_the_product_does_not_import_the_sandbox() -> None:
    found = product_imports_of_sandbox(PACKAGE_ROOT)
    allowed = ", ".join(sorted(SANDBOX_IMPORTERS))
    assert not found, (
        f"only {allowed} may import {SANDBOX}; the product must not depend on the server that plays "
        "Canada Post and Best Buy in tests:\n" + "\n".join(item.where() for item in found)
    )


def test_the_sandbox_imports_none_of_the_product() -> None:
    chains = sandbox_reaches_product(PACKAGE_ROOT)
    assert not chains, (
        f"{SANDBOX} must not import {', '.join(PRODUCT_FOR_SANDBOX)}, directly or through another "
        "fulfil module:\n" + "\n".join(" -> ".join(item.where() for item in chain) for chain in chains)
    )


def test_the_allowed_importers_exist() -> None:
    # An allowance for a module that was renamed or removed would quietly allow nothing.
    known = module_names(PACKAGE_ROOT)
    assert sorted(set(SANDBOX_IMPORTERS) - set(known)) == []
    graph = import_graph(PACKAGE_ROOT)
    cli_targets = {item.target for item in graph["fulfil.cli"]}
    assert "fulfil.sandbox.cli" in cli_targets


# A small package with every form of import the checks must see, and where each one is.
PLANTED_IMPORTS = {
    "__init__.py": "",
    "sandbox/__init__.py": "",
    "sandbox/cli.py": "",
    "sandbox/server.py": "import json\n",
    "sandbox/helpers.py": "from fulfil import xml_parsing\n",
    "xml_parsing.py": "def later():\n    from .workflows import labels\n",
    "workflows/__init__.py": "",
    "workflows/labels.py": "",
    "cli/__init__.py": "from fulfil.sandbox.cli import sandbox_app\nfrom fulfil.sandbox import server\n",
    "demo.py": "from fulfil.sandbox.server import Server\n",
    "bestbuy/__init__.py": "",
    "bestbuy/client.py": "import os\n\n\ndef probe():\n    import fulfil.sandbox.server\n",
    "bestbuy/order_states.py": "from .. import sandbox\n",
    "services.py": "import importlib\n\nimportlib.import_module('fulfil.sandbox')\n",
    "runs.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from fulfil.sandbox import x\n",
}


def test_the_checks_find_every_form_of_import(tmp_path: Path) -> None:
    root = tmp_path / "fulfil"
    for relative, text in PLANTED_IMPORTS.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    found = {(item.importer, item.line, item.target) for item in product_imports_of_sandbox(root)}
    assert found == {
        ("fulfil.cli", 2, "fulfil.sandbox"),  # the CLI may import the sandbox's command group only
        ("fulfil.cli", 2, "fulfil.sandbox.server"),
        ("fulfil.bestbuy.client", 5, "fulfil.sandbox.server"),  # inside a function
        ("fulfil.bestbuy.order_states", 1, "fulfil.sandbox"),  # relative
        ("fulfil.services", 3, "fulfil.sandbox"),  # by name
        ("fulfil.runs", 3, "fulfil.sandbox"),  # for the type checker only, still a dependency
    }

    chains = sandbox_reaches_product(root)
    assert [[(item.importer, item.line, item.target) for item in chain] for chain in chains] == [
        [
            ("fulfil.sandbox.helpers", 1, "fulfil.xml_parsing"),
            ("fulfil.xml_parsing", 2, "fulfil.workflows"),
        ]
    ]
    message = " -> ".join(item.where() for item in chains[0])
    assert "fulfil.sandbox.helpers" in message
    assert "helpers.py:1" in message
