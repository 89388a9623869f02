"""Every mapped class, imported once so that `Base.metadata` is complete (Alembic, tests)."""

from stockroom.auth import models as auth_models
from stockroom.catalog import models as catalog_models
from stockroom.db.base import Base
from stockroom.events import models as events_models
from stockroom.idempotency import models as idempotency_models
from stockroom.purchasing import models as purchasing_models
from stockroom.sales import models as sales_models
from stockroom.stock import models as stock_models
from stockroom.webhooks import models as webhooks_models

__all__ = [
    "Base",
    "auth_models",
    "catalog_models",
    "events_models",
    "idempotency_models",
    "purchasing_models",
    "sales_models",
    "stock_models",
    "webhooks_models",
]
