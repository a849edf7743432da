"""Typer's help and usage errors without loading the parts of rich that fulfil never uses.

``typer.rich_utils``, which renders every help page and usage error, imports rich's Markdown (and
with it markdown-it and pygments) and rich's Traceback at its top, for Markdown help text and
pretty tracebacks. fulfil uses neither (its help is rich markup; pretty exceptions are off), yet
importing them was a fifth of `fulfil --help`'s time. So while ``typer.rich_utils`` is being
imported, and only then, ``rich.markdown`` and ``rich.traceback`` are stand-in modules whose classes
load rich's own the first time they are used. Once it is imported the stand-ins leave sys.modules:
anything importing those modules later gets rich's own, and typer's Markdown and Traceback still
work (each loads rich's class on first use). Should the stand-ins ever fall short (a typer or rich
that needs more of those modules while typer's module is imported), typer's module and whatever came
in with it are imported again with nothing deferred: slower, never different.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from importlib.abc import Loader  # importlib.abc itself costs 5 ms: for the type checker only

TYPER_RICH_UTILS = "typer.rich_utils"
# Module -> the names typer.rich_utils imports from it at its top.
UNUSED_BY_FULFIL: Mapping[str, tuple[str, ...]] = {
    "rich.markdown": ("Markdown",),
    "rich.traceback": ("Traceback",),
}


class LoadedOnFirstUse(type):
    """The type of a stand-in class: calling it, or reading one of its attributes, loads the real
    class. Dunder names are not forwarded, so typing's look at an annotation such as
    ``Markdown | Text`` loads nothing."""

    real_module: str
    real_name: str

    def real(cls) -> Any:
        return getattr(importlib.import_module(cls.real_module), cls.real_name)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls.real()(*args, **kwargs)

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(cls.real(), name)

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, cls.real())

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, cls.real())


def stand_in(module_name: str, class_names: Sequence[str]) -> ModuleType:
    """A module holding, for each name, a class that loads ``module_name``'s on first use."""
    module = ModuleType(module_name, f"Stand-in for {module_name}: each class loads the real one on use.")
    for name in class_names:
        namespace = {"real_module": module_name, "real_name": name, "__module__": __name__}
        setattr(module, name, LoadedOnFirstUse(name, (), namespace))
    return module


def _holds_a_stand_in(module: ModuleType, stand_ins: Sequence[ModuleType]) -> bool:
    """Whether ``module`` took one of the stand-in modules, or one of their classes, as its own."""
    held = {id(item) for item in stand_ins} | {
        id(value)
        for item in stand_ins
        for value in vars(item).values()
        if isinstance(value, LoadedOnFirstUse)
    }
    return any(id(value) in held for value in list(vars(module).values()))


class ImportWithStandIns:
    """The loader of one module: the module's own loader, run with stand-ins in sys.modules."""

    def __init__(self, loader: Any, deferred: Mapping[str, Sequence[str]]) -> None:
        self.loader = loader
        self.deferred = deferred

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self.loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        before = set(sys.modules)
        stand_ins = {
            name: stand_in(name, classes)
            for name, classes in self.deferred.items()
            if name not in sys.modules
        }
        sys.modules.update(stand_ins)
        try:
            self.loader.exec_module(module)
            fell_short = False
        except Exception:
            fell_short = True
        finally:
            for name, placeholder in stand_ins.items():
                if sys.modules.get(name) is placeholder:
                    del sys.modules[name]
        came_along = [name for name in set(sys.modules) - before if name != module.__name__]
        if not fell_short and not any(
            _holds_a_stand_in(sys.modules[name], list(stand_ins.values())) for name in came_along
        ):
            return
        # Another module took a stand-in, or one was missing a name: start again with rich whole.
        for name in came_along:
            sys.modules.pop(name, None)
        self.loader.exec_module(module)

    def __getattr__(self, name: str) -> Any:
        # get_source, get_filename, …: tracebacks and linecache ask the loader for the source.
        return getattr(self.loader, name)


class DeferWhileImporting:
    """A meta path finder for one module, used once: it finds the module as the others would and
    hands it to ImportWithStandIns."""

    def __init__(self, importer: str, deferred: Mapping[str, Sequence[str]]) -> None:
        self.importer = importer
        self.deferred = deferred

    def find_spec(self, fullname: str, path: Sequence[str] | None = None, target: Any = None) -> Any:
        if fullname != self.importer:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = cast("Loader", ImportWithStandIns(spec.loader, self.deferred))
        return spec


def defer_while_importing(importer: str, deferred: Mapping[str, Sequence[str]]) -> None:
    """When ``importer`` is first imported, import it with stand-ins for ``deferred`` (module ->
    class names), which load the real classes on first use. Nothing happens if it is already
    imported, or if the deferred modules are."""
    if importer in sys.modules or all(name in sys.modules for name in deferred):
        return
    if not any(
        isinstance(finder, DeferWhileImporting) and finder.importer == importer for finder in sys.meta_path
    ):
        sys.meta_path.insert(0, DeferWhileImporting(importer, deferred))


def defer_unused_rich() -> None:
    """Typer's rich rendering, without rich's Markdown and Traceback until something uses them."""
    defer_while_importing(TYPER_RICH_UTILS, UNUSED_BY_FULFIL)
