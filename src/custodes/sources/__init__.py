"""Sources: what custodes checks, turned into subjects.

A directory walk (:func:`walk`), an archive held in memory (:func:`read_archive`) and a source
map (:func:`read_source_map`) each yield :class:`~custodes.subject.Subject` items, and a
:class:`~custodes.subject.Skipped` record for whatever they could not read, all within one set
of :class:`Limits`.
"""

from __future__ import annotations

from custodes.sources.archive import read_archive
from custodes.sources.languages import language_of
from custodes.sources.limits import Limits
from custodes.sources.sourcemap import inline_source_map, read_source_map
from custodes.sources.walk import walk

__all__ = [
    "Limits",
    "inline_source_map",
    "language_of",
    "read_archive",
    "read_source_map",
    "walk",
]
