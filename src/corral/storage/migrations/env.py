"""Alembic environment: runs synchronously on the URL given by corral.storage.db.upgrade."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from corral.storage.tables import Base

config = context.config


def run() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
