"""Errors raised by the alertd daemon; the API layer maps them to HTTP statuses."""

from __future__ import annotations


class AlertdError(Exception):
    """Something went wrong in alertd."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def reason(self) -> str:
        """The human-readable reason, as shown to the caller."""
        return str(self)


class ConfigError(AlertdError):
    """The configuration is invalid."""


class InvalidInput(AlertdError):
    """The request is invalid."""


class NotFound(AlertdError):
    """No such object."""


class Conflict(AlertdError):
    """The request conflicts with the current state."""


class PreconditionFailed(AlertdError):
    """The object changed since the version named in the request."""


class Unauthenticated(AlertdError):
    """Missing or unknown credentials."""


class Forbidden(AlertdError):
    """The credentials do not allow this."""


class PayloadTooLarge(AlertdError):
    """The message is too large to send."""


class DatabaseUnavailable(AlertdError):
    """The database cannot be reached."""


class NotReady(AlertdError):
    """The service is starting; retry in a few seconds."""


class LocationsBehind(NotReady):
    """The location index did not confirm the latest locations in time; retry shortly."""


class CannotListen(AlertdError):
    """The daemon cannot listen on its configured address (the port is taken or not allowed)."""


class TooComplex(InvalidInput):
    """The input would take too long to process."""


class Overloaded(AlertdError):
    """The server is busy; retry in a few seconds."""
