"""The FastAPI application: routers, middleware, error handlers and lifespan."""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from stockroom.activity.pages import router as pages_router
from stockroom.activity.router import router as activity_router
from stockroom.auth import fastpath as auth_fastpath
from stockroom.auth.deps import authenticate_before_body
from stockroom.auth.lifespan import auth_startup
from stockroom.auth.router import router as auth_router
from stockroom.catalog import fastpath as catalog_fastpath
from stockroom.catalog.router import router as catalog_router
from stockroom.db.runtime import open_database
from stockroom.events.lifespan import event_pipeline
from stockroom.health.router import router as health_router
from stockroom.http.errors import install_error_handlers
from stockroom.http.fastpath import FastPathMiddleware, FastRoute
from stockroom.http.metrics import CONTENT_TYPE_LATEST, check_metrics_access, generate_latest
from stockroom.http.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from stockroom.http.openapi import install_openapi, operation_id
from stockroom.logs import configure_logging
from stockroom.purchasing.router import reorder_router
from stockroom.purchasing.router import router as purchasing_router
from stockroom.reports.router import router as reports_router
from stockroom.sales import fastpath as sales_fastpath
from stockroom.sales.router import router as sales_router
from stockroom.settings import Settings, get_settings
from stockroom.stock import fastpath as stock_fastpath
from stockroom.stock.router import router as stock_router
from stockroom.webhooks.lifespan import webhook_dispatcher
from stockroom.webhooks.router import router as webhooks_router

API_PREFIX = "/api/v1"
# The only routes that take a body over MAX_BODY_BYTES (up to MAX_UPLOAD_BYTES), each from an
# authenticated caller only (checked before the body is read).
UPLOAD_ROUTES = frozenset({("POST", f"{API_PREFIX}/products/import")})

SALES_ORDER = f"{API_PREFIX}/sales-orders/{{order_id}}"

# The hottest requests, served in front of FastAPI's router for what they cost; each declines
# (to its FastAPI route) whatever it is not sure to answer as the route would (http.fastpath).
FAST_ROUTES = (
    FastRoute("POST", f"{API_PREFIX}/stock-movements", stock_fastpath.post_movement, True),
    FastRoute("GET", f"{API_PREFIX}/products/{{product_id}}", catalog_fastpath.get_product),
    FastRoute("GET", f"{API_PREFIX}/users/me", auth_fastpath.get_me),
    FastRoute("POST", f"{SALES_ORDER}/confirm", sales_fastpath.confirm, True),
    FastRoute("POST", f"{SALES_ORDER}/ship", sales_fastpath.ship, True),
)


def create_app(
    settings: Settings | None = None,
    *,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
) -> FastAPI:
    """Build the app. Tests pass their own `sessionmaker`; otherwise the lifespan opens the
    database the settings point at (external URL, or the embedded server)."""
    settings = settings or get_settings()
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if sessionmaker is None:
                database = await stack.enter_async_context(open_database(settings))
                app.state.database = database
                app.state.sessionmaker = database.sessionmaker
            else:
                app.state.sessionmaker = sessionmaker
            await stack.enter_async_context(event_pipeline(app))
            await stack.enter_async_context(auth_startup(app))
            await stack.enter_async_context(webhook_dispatcher(app))
            yield

    app = FastAPI(
        title="Stockroom",
        version="1.0.0",
        summary="Inventory management: an immutable stock ledger in PostgreSQL, "
        "an activity event store in MongoDB.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        generate_unique_id_function=operation_id,
        # FastAPI's native OpenTelemetry bridge asks on every request whether a provider is
        # configured (a tenth of a bare route's CPU). Stockroom does not use OpenTelemetry: its
        # request metrics and logs are the request-context middleware's (docs/operations.md).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings

    install_error_handlers(app)
    install_openapi(app)
    for router in (
        health_router,
        auth_router,
        catalog_router,
        stock_router,
        purchasing_router,
        reorder_router,
        sales_router,
        reports_router,
        activity_router,
        webhooks_router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(pages_router)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        check_metrics_access(request, settings.metrics_token)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # Added innermost first: the request-context middleware wraps everything, so even a 413 or
    # a CORS refusal carries a request id and is counted. The fast paths are innermost: body
    # limits, CORS, request ids, logs and metrics apply to them as to every route.
    app.add_middleware(FastPathMiddleware, routes=FAST_ROUTES)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        upload_routes=UPLOAD_ROUTES,
        authenticate=authenticate_before_body,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-Match",
                "Idempotency-Key",
                "X-Request-ID",
            ],
            expose_headers=["ETag", "Location", "X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestContextMiddleware, hsts=settings.is_production)
    if settings.forwarded_allow_ips:
        # Outermost, so the request id, the access log and the audit trail all see the client
        # the trusted proxy names. Without it the socket peer is the client, whatever the
        # headers say (uvicorn's own proxy handling stays off: see cli.serve).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document, built without a database, a server or a data folder."""
    # A throwaway key: Settings() would otherwise create one in the data folder.
    app = create_app(Settings(secret_key=secrets.token_urlsafe(48)))
    return app.openapi()


if __name__ == "__main__":
    # `python -m stockroom.main [PATH]`: the document as JSON (clients generate their types
    # from it; examples/web-client does in CI).
    text = json.dumps(openapi_document(), indent=2) + "\n"
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text)
    else:
        sys.stdout.write(text)
