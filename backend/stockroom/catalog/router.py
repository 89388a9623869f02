"""HTTP routes of the catalog domain."""

from fastapi import APIRouter

router = APIRouter()
