"""Errors raised by the feeds package; callers quarantine the item and keep its reason."""

from __future__ import annotations


class FeedError(Exception):
    """The feed item could not be read."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def reason(self) -> str:
        """The human-readable reason, as shown to the sender or kept with the quarantined item."""
        return str(self)


class UnsafeXml(FeedError):
    """The XML uses a feature that is refused (DTD, entity declaration or XInclude)."""


class MalformedXml(FeedError):
    """The document is not well-formed XML."""


class TooLarge(FeedError):
    """The document is larger than allowed."""


class InvalidMessage(FeedError):
    """The message is not a valid alert."""


class UnresolvableArea(FeedError):
    """The message's area cannot be resolved to a place."""
