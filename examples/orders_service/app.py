"""Orders service: a FastAPI resource server protected by the Tessera verifier SDK.

It imports nothing from Tessera but ``tessera.verifier``'s public names. Every route
states what it needs; the SDK verifies the bearer token locally (JWKS cache), knows about
revocations within about a second (it follows the identity service's revocation feed),
logs one ``access.allowed`` / ``access.denied`` event per decision and exports
Prometheus metrics on ``/metrics``.

=====================  ==============================================================
route                  needs
=====================  ==============================================================
GET  /healthz          nothing (liveness)
GET  /readyz           nothing; 503 until the verifier has loaded the JWKS and the
                       first revocation snapshot (readiness)
GET  /orders           scope ``orders:read``; lists the caller's orders
POST /orders           scope ``orders:write``; places an order for the caller
GET  /orders/{id}      scope ``orders:read`` and being the order's owner (``sub``)
GET  /admin/export     scope ``orders:admin``, strict: fresh revocation state, or
                       else 503 / introspection (``TESSERA_VERIFIER_STRICT_FALLBACK``)
GET  /metrics          nothing (keep it on an internal port or network)
=====================  ==============================================================

Configuration comes from ``TESSERA_VERIFIER_*`` environment variables (see README), or
pass a ``VerifierService`` to ``create_app``. Run with
``uvicorn examples.orders_service.app:create_app --factory``.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.routing import Route

from tessera.verifier import VerifiedToken
from tessera.verifier.fastapi import install, require_owner, require_scopes
from tessera.verifier.metrics import metrics_app
from tessera.verifier.service import VerifierService
from tessera.verifier.settings import VerifierSettings

__all__ = ["Order", "OrderBook", "create_app"]


@dataclass(frozen=True)
class Order:
    order_id: str
    owner: str
    """The ``sub`` of the user who placed it."""
    tenant: str
    item: str
    quantity: int


class OrderBook:
    """In-memory orders (a real service has a database)."""

    def __init__(self) -> None:
        self._orders: dict[str, Order] = {}
        self._ids = itertools.count(1)

    def place(self, *, owner: str, tenant: str, item: str, quantity: int) -> Order:
        order = Order(f"o-{next(self._ids)}", owner, tenant, item, quantity)
        self._orders[order.order_id] = order
        return order

    def get(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

    def of(self, owner: str) -> list[Order]:
        return [o for o in self._orders.values() if o.owner == owner]

    def all(self) -> list[Order]:
        return list(self._orders.values())


class NewOrder(BaseModel):
    item: str
    quantity: int = 1


def order_book(request: Request) -> OrderBook:
    book: OrderBook = request.app.state.orders
    return book


async def order_owner(order_id: str,
                      book: Annotated[OrderBook, Depends(order_book)]) -> str:
    """Who owns the order (runs only after the token was verified)."""
    order = book.get(order_id)
    if order is None:
        raise HTTPException(404, "no such order")
    return order.owner


Reader = Annotated[VerifiedToken, Depends(require_scopes("orders:read"))]
Writer = Annotated[VerifiedToken, Depends(require_scopes("orders:write"))]
Owner = Annotated[VerifiedToken, Depends(require_owner(order_owner, scopes=("orders:read",)))]
Exporter = Annotated[VerifiedToken, Depends(require_scopes("orders:admin", strict=True))]
Book = Annotated[OrderBook, Depends(order_book)]


def create_app(service: VerifierService | None = None,
               book: OrderBook | None = None) -> FastAPI:
    """The orders app. Without ``service``, settings come from ``TESSERA_VERIFIER_*``."""
    if service is None:
        service = VerifierService(VerifierSettings())
    app = FastAPI(title="orders", lifespan=service.lifespan)
    install(app, service)
    app.state.orders = book if book is not None else OrderBook()
    app.router.routes.append(Route("/metrics", metrics_app(service.registry),
                                   include_in_schema=False))

    @app.get("/healthz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def ready() -> JSONResponse:
        missing = service.readiness()
        return JSONResponse({"status": "unavailable", "missing": missing} if missing
                            else {"status": "ready"}, status_code=503 if missing else 200)

    @app.get("/orders")
    async def list_orders(token: Reader, book: Book) -> list[dict[str, Any]]:
        return [asdict(order) for order in book.of(token.sub)]

    @app.post("/orders", status_code=201)
    async def place_order(new: NewOrder, token: Writer, book: Book) -> dict[str, Any]:
        order = book.place(owner=token.sub, tenant=token.tid, item=new.item,
                           quantity=new.quantity)
        return asdict(order)

    @app.get("/orders/{order_id}")
    async def get_order(order_id: str, _: Owner, book: Book) -> dict[str, Any]:
        order = book.get(order_id)
        assert order is not None  # order_owner answered 404 otherwise
        return asdict(order)

    @app.get("/admin/export")
    async def export(token: Exporter, book: Book) -> dict[str, Any]:
        return {"exported_by": token.sub,
                "orders": [asdict(o) for o in book.all() if o.tenant == token.tid]}

    return app
