"""Every error ``dlq_admin`` raises on purpose has one root, ``DlqAdminError``.

DlqAdminError
├── AdminError            a refused call: a stable ``code`` and the HTTP status the web layer
│   │                     answers with (the FastAPI handler maps each to one status)
│   ├── Unauthenticated   no or unknown bearer token                 -> 401
│   ├── Forbidden         a viewer token on a mutating call          -> 403
│   ├── NotFound          unknown entry or payment id                -> 404
│   ├── Conflict          the entry or payment is not replayable     -> 409
│   ├── InvalidInput      bad filter, cursor or edited payload       -> 422
│   └── Unavailable       database or broker unreachable             -> 503
├── TokenConfigError      the admin token settings are missing or malformed (also a
│                         ``ValueError``); start-up turns it into a one-line refusal
└── CliError              ``payproc dlq``: the API refused or failed (exit 1) or bad usage (2)

A publish the broker did not confirm is ``retry.errors.PublishNotConfirmed`` (shared with the
worker); the replay capability turns it into ``Unavailable`` or a ``failed`` entry of a bulk
replay.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One invalid field: where (``loc``), what is wrong (``msg``) and a machine ``type``."""

    loc: tuple[str | int, ...]
    msg: str
    type: str = "value_error"


class DlqAdminError(Exception):
    """The root: catch this to catch every error the DLQ admin raises on purpose."""


class AdminError(DlqAdminError):
    """A refused call: ``code`` is a stable machine-readable string, the message is for humans."""

    code = "error"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthenticated(AdminError):
    """No bearer token, or one that matches no configured token."""

    code = "unauthenticated"
    http_status = 401


class Forbidden(AdminError):
    """The token is valid but its role may not do this (a viewer on a mutating route)."""

    code = "forbidden"
    http_status = 403


class NotFound(AdminError):
    """No entry, payment or route target with that id."""

    code = "not_found"
    http_status = 404


class Conflict(AdminError):
    """The call is well-formed but the current state refuses it (already succeeded/replayed)."""

    http_status = 409

    def __init__(self, message: str, code: str = "conflict") -> None:
        super().__init__(message)
        self.code = code


class InvalidInput(AdminError):
    """A filter, cursor, selection or edited payload is invalid; ``problems`` names fields."""

    http_status = 422

    def __init__(
        self,
        message: str,
        problems: list[FieldProblem] | None = None,
        code: str = "invalid_request",
    ) -> None:
        super().__init__(message)
        self.problems = problems or []
        self.code = code


class Unavailable(AdminError):
    """The database or the broker cannot be reached right now; retry later."""

    code = "unavailable"
    http_status = 503


class TokenConfigError(DlqAdminError, ValueError):
    """The token settings are missing or malformed; the message never contains a token."""


class CliError(DlqAdminError):
    """``payproc dlq`` failed: ``code`` is the exit status (1 the API refused, 2 bad usage)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code
