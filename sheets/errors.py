"""Errors raised by the sheets package; the API layer maps them to HTTP statuses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sheets.model import StoredSheet


class SheetError(Exception):
    """The sheet request cannot be carried out."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def reason(self) -> str:
        """The human-readable reason, as shown to the caller."""
        return str(self)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem in a sheet document: where (see sheets.validate for the path syntax) and why."""

    path: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        """The error as the API shows it."""
        return {"path": self.path, "reason": self.reason}


class SheetInvalid(SheetError):
    """The sheet is invalid."""

    def __init__(self, fields: list[FieldError]) -> None:
        super().__init__()
        self.fields = tuple(fields)


class IfMatchRequired(SheetError):
    """The sheet exists: replace it with If-Match naming the version you last saw."""


class BadIfMatch(SheetError):
    """If-Match must be "*" or a list of quoted versions such as "3"."""


class StaleVersion(SheetError):
    """The sheet changed since the version named in If-Match."""

    def __init__(self, current: StoredSheet | None) -> None:
        super().__init__()
        self.current = current


class SheetMissing(SheetError):
    """No such sheet."""


class TooManySheets(SheetError):
    """The device already has the most sheets allowed."""


class CursorUnreadable(SheetError):
    """The sync cursor cannot be read here; sync again without one."""


class CursorExpired(SheetError):
    """The sync cursor is older than the server keeps changes for; sync again without one."""
