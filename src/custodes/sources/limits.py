"""Limits that keep a scan bounded in memory and time, whatever the input claims about itself.

One :class:`Limits` value is shared by the directory walk, the archive reader and the source-map
reader. Exceeding a limit never raises: the source reports a :class:`~custodes.subject.Skipped`
record naming the limit and goes on with what is safe to read.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from custodes.sources.content import is_archive_name, is_source_map_name

__all__ = ["DEFAULT_LIMITS", "Limits", "MiB"]

MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Bounds for one scan.

    The member and byte budgets are per top-level archive, nested archives included, so an
    archive of archives cannot multiply them.
    """

    max_file_bytes: int = 16 * MiB
    """Largest text file or archive member read; larger ones are skipped unread (too-large)."""

    max_archive_bytes: int = 256 * MiB
    """Largest archive or source map (a file, or a member) loaded into memory to be read.

    Release artifacts (wheels, jars, npm tarballs) and the source maps shipped in them are
    routinely larger than any text file, and they are containers whose contents are what gets
    checked, so they get their own bound; what an archive inflates is still bounded by the
    budgets below.
    """

    max_members: int = 100_000
    """Entries read from one top-level archive, nested ones included."""

    max_total_bytes: int = 1024 * MiB
    """Uncompressed bytes inflated for one top-level archive, nested ones included."""

    max_ratio: float = 200.0
    """Uncompressed bytes per compressed byte, for a zip member or a whole compressed tar."""

    ratio_floor_bytes: int = 1 * MiB
    """Output below this size is never held to ``max_ratio``: a small, very regular file can
    compress extremely well, and this little output cannot amplify into a bomb."""

    max_depth: int = 3
    """Archives nested inside the top-level archive that are opened (a wheel in a zip in a tgz)."""

    def max_bytes_for(self, path: str) -> int:
        """The size limit for the file or member named ``path``: containers get the larger."""
        if is_archive_name(path) or is_source_map_name(path):
            return self.max_archive_bytes
        return self.max_file_bytes

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "max_depth":
                if value < 0:
                    raise ValueError(f"max_depth must be >= 0, not {value}")
            elif not value > 0:
                raise ValueError(f"{field.name} must be positive, not {value}")
        if self.max_ratio < 1:
            raise ValueError(f"max_ratio must be >= 1, not {self.max_ratio}")


DEFAULT_LIMITS = Limits()
