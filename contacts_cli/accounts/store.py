"""Where accounts live: one durable-state actor per account, and the registry that spawns them.

An account is one JSON value under the key ``contacts-account/<name>`` in the engine's
durable-state table (``durable_state`` in PostgreSQL): the argon2id hash in PHC form and two
timestamps, never the password. Every change is a revision-checked write
(:mod:`actors.durable_state`), so two writers never silently overwrite each other. Like a
user's actor, an account's actor is spawned on first use and passivates when idle; while it
lives, a login reads the hash from its memory, not from the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from actors import ActorRef, Context, Decision, DurableStateActor, DurableStateContext, spawn
from actors import spawn_actor as spawn_child
from contacts_cli.backends.errors import Conflict, NotFound
from contacts_cli.service.ids import check_user_id
from contacts_cli.service.messages import Failed
from contacts_cli.service.router import Resolve
from contacts_cli.service.settings import Settings

ACCOUNT_PREFIX = "contacts-account/"
CHILD_PREFIX = "account:"


def account_key(name: str) -> str:
    """The durable-state key of the account ``name`` (a valid user id)."""
    return ACCOUNT_PREFIX + check_user_id(name)


@dataclass(frozen=True, slots=True)
class Account:
    """One account as stored; :meth:`public` is what the CLI and the admin routes show."""

    name: str
    password_hash: str
    created_at: str
    password_changed_at: str

    def public(self) -> dict[str, Any]:
        """The account without its hash."""
        return {"name": self.name, "created_at": self.created_at,
                "password_changed_at": self.password_changed_at}


@dataclass(frozen=True, slots=True)
class GetAccount:
    """Reply: the :class:`Account`, or None when there is none."""


@dataclass(frozen=True, slots=True)
class AddAccount:
    """Create the account; refused (``Conflict``) if it exists. Reply: the :class:`Account`."""

    password_hash: str


@dataclass(frozen=True, slots=True)
class SetPassword:
    """Replace the hash; refused (``NotFound``) if there is no account. Reply: the account."""

    password_hash: str


@dataclass(frozen=True, slots=True)
class RemoveAccount:
    """Delete the account; refused (``NotFound``) if there is none. Reply: the removed one."""


AccountMessage = GetAccount | AddAccount | SetPassword | RemoveAccount


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class AccountActor(DurableStateActor[Account]):
    """The durable state of one account; the only writer of its key while it lives."""

    def __init__(self, name: str) -> None:
        self.name = check_user_id(name)
        self.key = account_key(name)

    def encode_state(self, value: Account) -> dict[str, Any]:
        return {"password_hash": value.password_hash, "created_at": value.created_at,
                "password_changed_at": value.password_changed_at}

    def decode_state(self, payload: Any) -> Account:
        return Account(self.name, str(payload["password_hash"]), str(payload["created_at"]),
                       str(payload["password_changed_at"]))

    async def on_command(self, command: Any, ctx: DurableStateContext[Account]) -> None:
        current = ctx.get_state()
        if isinstance(command, GetAccount):
            ctx.reply(current)
        elif isinstance(command, AddAccount):
            if current is not None:
                ctx.reply(Failed(Conflict(f"account {self.name!r} already exists; "
                                          "change its password with `contacts user passwd`")))
                return
            now = _now()
            account = Account(self.name, command.password_hash, now, now)
            await ctx.set_state(account)
            ctx.reply(account)
        elif current is None:
            ctx.reply(Failed(NotFound(f"no account {self.name!r}")))
        elif isinstance(command, SetPassword):
            account = Account(self.name, command.password_hash, current.created_at, _now())
            await ctx.set_state(account)
            ctx.reply(account)
        elif isinstance(command, RemoveAccount):
            await ctx.delete_state()
            ctx.reply(current)
        else:
            raise TypeError(f"an account actor cannot handle {type(command).__name__}")


class AccountRegistry:
    """The behaviour of the ``accounts`` actor: finds or spawns the actor of an account."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def handle(self, state: Any, msg: object, ctx: Context) -> Any:
        if isinstance(msg, Resolve):
            name = check_user_id(msg.user_id)
            child = ctx.children.get(CHILD_PREFIX + name)
            if child is None:
                child = spawn_child(ctx.self, AccountActor(name), CHILD_PREFIX + name,
                                    shutdown_after=self.settings.shutdown_after)
            ctx.reply(child)
        return state

    def on_crash(self, msg: object, error: BaseException, ctx: Context) -> Decision:
        """An account actor that failed to start is stopped; the next request starts it
        afresh. The registry itself resumes."""
        if msg is None:
            return Decision.STOP_CHILD
        ctx.log.error("account registry failed on %r: %r", msg, error)
        return Decision.RESUME


def spawn_registry(parent: Any, settings: Settings, name: str = "accounts") -> ActorRef:
    """Spawn the account registry under ``parent`` (the actor system)."""
    registry = AccountRegistry(settings)
    return spawn(parent, registry.handle, name, on_crash=registry.on_crash)
