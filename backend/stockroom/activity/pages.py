"""Server-rendered HTML pages at the site root (the admin dashboard)."""

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
