"""Alembic migrations of the store's tables: ``env.py`` and ``versions/``.

:mod:`accord.store.migrate` runs them when a store is opened; nothing here is
imported as a module. Each revision is plain Alembic operations on portable types
(SQLite and PostgreSQL), so that it means the same on every backend, and does not
import accord's models, which describe only the newest schema.

To add one: change :mod:`accord.store.schema`, then generate a draft against a
database at the current head and edit it by hand::

    from alembic import command
    from accord.store.migrate import alembic_config
    command.revision(alembic_config(url="sqlite:///dev.db"), "what changes",
                     autogenerate=True, rev_id="0003")

``tests/unit/store/test_store_migrations.py`` checks that the migrations give
exactly the models' schema on SQLite and PostgreSQL.
"""
