"""The browser viewer for the live stream: static files shipped in the package, no CDN."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# The page talks only to its own origin; nothing is loaded from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(tags=["viewer"])


@router.get("/", include_in_schema=False)
@router.get("/demo", include_in_schema=False)
async def viewer() -> FileResponse:
    return FileResponse(STATIC_DIR / "viewer.html", headers=SECURITY_HEADERS)
