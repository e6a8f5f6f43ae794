"""The PostgreSQL engine: group-committed journal, snapshots and durable state."""

from persistence.postgres.config import PostgresConfig, database_url_from_env, describe_target
from persistence.postgres.engine import PostgresEngine

__all__ = ["PostgresConfig", "PostgresEngine", "database_url_from_env", "describe_target"]
