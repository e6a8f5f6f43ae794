"""The one place where errors from below become backend errors.

The user actor's reply path and :class:`~contacts_cli.backends.local.LocalBackend` call
:func:`backend_error` (and, for a failed readiness probe, :func:`storage_unreachable`); no
other module maps errors. The rules::

    BackendError                          itself
    ActorCrashed(error)                   the translation of ``error``
    domain  ValidationError               Invalid, one (field, message) per problem
            ContactNotFound               NotFound
            VersionConflict               Conflict
            ContactExists                 Conflict (a create naming a taken id)
            any other DomainError         BackendError
    actors  QueryTimeout                  TimedOut
            ActorNotFound                 Unavailable (the actor keeps stopping)
            ActivationElsewhere           Unavailable (another instance hosts the user; the
                                          service forwards before it gets here)
            ActivationLost                Unavailable (the instance stopped serving the user)
            ConflictPersists              Unavailable (another writer keeps appending)
    storage ConcurrencyConflict           Unavailable (a conflict the actor could not retry)
            StorageUnavailable, OSError   Unavailable
    anything else                         BackendError ("internal error: ...")
"""

from __future__ import annotations

from actors import (
    ActivationElsewhere,
    ActivationLost,
    ActorCrashed,
    ActorNotFound,
    ConflictPersists,
    QueryTimeout,
)
from contacts_cli.backends import errors
from contacts_cli.backends.errors import BackendError, Unavailable
from contacts_cli.domain import (
    ContactExists,
    ContactNotFound,
    DomainError,
    ValidationError,
    VersionConflict,
)
from persistence.errors import ConcurrencyConflict, PersistenceError, StorageUnavailable


def backend_error(error: BaseException) -> BackendError:
    """The backend error standing for ``error`` (see the module's table)."""
    if isinstance(error, BackendError):
        return error
    if isinstance(error, ActorCrashed):
        return backend_error(error.error)
    if isinstance(error, DomainError):
        return _domain_error(error)
    if isinstance(error, QueryTimeout):
        return errors.TimedOut(f"no answer within {error.timeout:g} s")
    if isinstance(error, ActorNotFound):
        return Unavailable(f"the actor keeps stopping; see the server log ({error})")
    if isinstance(error, ActivationElsewhere | ActivationLost):
        return Unavailable(f"the user is moving between instances, retry: {error}")
    if isinstance(error, ConflictPersists | ConcurrencyConflict):
        return Unavailable(
            f"another writer changed this user's journal at the same time, retry: {error}"
        )
    if isinstance(error, StorageUnavailable | OSError):
        return storage_unreachable(error)
    return BackendError(f"internal error: {type(error).__name__}: {error}")


def storage_unreachable(error: BaseException, within: float | None = None) -> Unavailable:
    """The database failed to answer (a probe that timed out after ``within`` seconds, a
    connection error, or any storage failure of a probe)."""
    if isinstance(error, TimeoutError) and within is not None:
        return Unavailable(f"the database did not answer within {within:g} s")
    if isinstance(error, StorageUnavailable):
        return Unavailable(str(error))
    if isinstance(error, OSError | PersistenceError):
        return Unavailable(f"the database cannot be reached: {error}")
    return Unavailable(f"the database cannot be reached: {type(error).__name__}: {error}")


def _domain_error(error: DomainError) -> BackendError:
    if isinstance(error, ValidationError):
        return errors.Invalid([(e.field or "body", e.message) for e in error.errors])
    if isinstance(error, ContactNotFound):
        return errors.NotFound(str(error))
    if isinstance(error, VersionConflict | ContactExists):
        return errors.Conflict(str(error))
    return BackendError(str(error))
