"""Sources: what custodes checks, turned into subjects.

A directory walk (:func:`walk`), an archive held in memory (:func:`read_archive`) and a source
map (:func:`read_source_map`) each yield :class:`~custodes.subject.Subject` items, and a
:class:`~custodes.subject.Skipped` record for whatever they could not read, all within one set
of :class:`Limits`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from custodes.sources.languages import language_of
from custodes.sources.limits import Limits

# ``walk`` is bound here, not on first use: importing the submodule of that name would
# otherwise leave this package's ``walk`` the module, hiding the function.
from custodes.sources.walk import walk

if TYPE_CHECKING:
    from custodes.sources.archive import read_archive
    from custodes.sources.sourcemap import inline_source_map, read_source_map

# The archive and source-map readers are imported on first use: the fingerprinting workers
# import this package for its language table only.
_LAZY = {
    "read_archive": "custodes.sources.archive",
    "inline_source_map": "custodes.sources.sourcemap",
    "read_source_map": "custodes.sources.sourcemap",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'custodes.sources' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Limits",
    "inline_source_map",
    "language_of",
    "read_archive",
    "read_source_map",
    "walk",
]
