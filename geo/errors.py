"""Errors raised by the geo package; the API layer maps them to HTTP statuses."""

from __future__ import annotations


class GeoError(Exception):
    """A geographic operation failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def reason(self) -> str:
        """The human-readable reason, as shown to the caller."""
        return str(self)


class InvalidArea(GeoError):
    """The area is invalid."""


class UnknownAreaCode(InvalidArea):
    """The area code is unknown."""


class InvalidPoint(GeoError):
    """The point is invalid."""
