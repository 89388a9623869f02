"""HTTP routes of the stock domain."""

from fastapi import APIRouter

router = APIRouter()
