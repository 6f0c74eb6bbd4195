"""Storage: ports (typed Protocols per aggregate) and their SQLAlchemy adapters."""

from tessera.store.ports import Store, StoreError, UnitOfWork

__all__ = ["Store", "StoreError", "UnitOfWork"]
