"""HTTP routes of the activity domain."""

from fastapi import APIRouter

router = APIRouter()
