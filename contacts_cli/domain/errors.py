"""Typed domain errors: what the actor replies with and HTTP/CLI render for the user."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field; ``field`` is a path such as ``emails[1]`` or ``name``."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class DomainError(Exception):
    """Base of every error the contacts domain raises on purpose."""


class ValidationError(DomainError):
    """Input was rejected; ``errors`` lists every problem found, each naming its field."""

    def __init__(self, errors: Iterable[FieldError]) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        if not self.errors:
            raise ValueError("ValidationError needs at least one FieldError")
        super().__init__("; ".join(str(e) for e in self.errors))

    @classmethod
    def single(cls, field: str, message: str) -> ValidationError:
        return cls([FieldError(field, message)])

    def to_list(self) -> list[dict[str, str]]:
        """``[{"field": ..., "message": ...}]`` for a problem+json ``errors`` member."""
        return [{"field": e.field, "message": e.message} for e in self.errors]


class ContactNotFound(DomainError):
    """No live contact has this id (never existed, or removed)."""

    def __init__(self, contact_id: str) -> None:
        self.contact_id = contact_id
        super().__init__(f"contact {contact_id!r} not found")


class ContactExists(DomainError):
    """A create named an id (an address-book client names the card it creates) that a live
    contact already has."""

    def __init__(self, contact_id: str) -> None:
        self.contact_id = contact_id
        super().__init__(f"contact {contact_id!r} already exists")


class VersionConflict(DomainError):
    """The caller's expected version is stale: somebody changed the contact meanwhile."""

    def __init__(self, contact_id: str, expected: int, actual: int) -> None:
        self.contact_id = contact_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"contact {contact_id!r} is at version {actual}, not the expected {expected}"
        )


class EventSchemaError(DomainError):
    """A stored event cannot be decoded: unknown type, a version from the future, bad payload."""


class NewIdCollision(DomainError):
    """The id source (``new_id``) kept returning ids that are already taken: it is broken."""

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts
        super().__init__(f"new_id returned {attempts} ids in a row that are already taken")
