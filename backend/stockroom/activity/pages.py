"""Server-rendered HTML pages at the site root: the admin dashboard at `/dashboard`.

The page itself is public (it holds no data): it signs the user in against
`/api/v1/auth/login-json` and draws the `audit:read` JSON endpoints with Chart.js, which is
vendored in `static/` (see `static/README.md`); nothing is loaded from a CDN.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from stockroom.http.errors import NotFound

router = APIRouter(include_in_schema=False)

_HERE = Path(__file__).parent
_STATIC = _HERE / "static"
# Only these files are served: no path from the URL ever reaches the file system.
_ASSETS = {
    "chart.umd.min.js": "text/javascript; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@lru_cache
def _page() -> str:
    return (_HERE / "templates" / "dashboard.html").read_text(encoding="utf-8")


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard() -> HTMLResponse:
    """The admin dashboard page."""
    return HTMLResponse(_page(), headers={**_SECURITY_HEADERS, "Cache-Control": "no-cache"})


@router.get("/dashboard/static/{name}")
async def dashboard_asset(name: str) -> FileResponse:
    """A static file of the dashboard page (vendored Chart.js, the page's script and style)."""
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise NotFound("no such file")
    return FileResponse(
        _STATIC / name,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
