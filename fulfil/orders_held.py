"""Which of the order ids a person named fulfil holds: the one check behind "an order id fulfil
does not have is an error (exit 3)" for the commands whose own work would just find nothing for it
(`labels print`, `tracking refresh`, `calls --order`, `labels keep`)."""

from __future__ import annotations

from collections.abc import Sequence

from fulfil.db import connect, query

# What to do about an order fulfil does not have, said the same way by every command.
NOT_HELD = "is not in the orders table: `fulfil orders pull` or `fulfil orders import` it first"


def orders_not_held(database_url: str, order_ids: Sequence[str]) -> list[str]:
    """The ids among ``order_ids`` with no row in ``orders``, in the order given."""
    if not order_ids:
        return []
    with connect(database_url, autocommit=True, application_name="fulfil-orders-held") as conn:
        rows = conn.execute(query("orders", "orders_not_held"), {"order_ids": list(order_ids)}).fetchall()
    return [row[0] for row in rows]
