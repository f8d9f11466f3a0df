"""The one interface of the detector family."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from custodes.findings import Finding
from custodes.subject import Subject

__all__ = ["Detector"]


class Detector(Protocol):
    """Turns a subject into findings; pure, apart from its loaded index or rules."""

    name: str

    def scan(self, subject: Subject) -> Iterable[Finding]: ...
