"""A small synchronous client for scenarios against a real server process."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Api:
    base: str
    token: str

    @classmethod
    def login(cls, base: str, email: str, password: str) -> Api:
        response = httpx.post(
            f"{base}/api/v1/auth/login-json", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.text
        return cls(base=base, token=response.json()["access_token"])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=f"{self.base}/api/v1", headers=self.headers, **kwargs)

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.base}/api/v1{path}", json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def warehouse(self) -> str:
        code = f"WH{uuid.uuid4().hex[:6].upper()}"
        return str(self.create("/warehouses", {"code": code, "name": f"Warehouse {code}"})["id"])

    def product(self, **fields: Any) -> str:
        body = {
            "sku": f"SKU-{uuid.uuid4().hex[:8]}",
            "name": "Scenario product",
            "cost_price": "4.00",
            "sale_price": "10.00",
            **fields,
        }
        return str(self.create("/products", body)["id"])

    def receive(self, product_id: str, warehouse_id: str, quantity: int) -> None:
        self.create(
            "/stock-movements",
            {
                "product_id": product_id,
                "warehouse_id": warehouse_id,
                "type": "receipt",
                "quantity": quantity,
            },
        )

    def all_activity_ids(self) -> list[str]:
        ids: list[str] = []
        cursor: str | None = None
        with self.client(timeout=30) as c:
            while True:
                params: dict[str, Any] = {"limit": 500}
                if cursor:
                    params["cursor"] = cursor
                page = c.get("/activity", params=params)
                assert page.status_code == 200, page.text
                body = page.json()
                ids.extend(item["id"] for item in body["items"])
                cursor = body.get("next_cursor")
                if not cursor:
                    return ids
