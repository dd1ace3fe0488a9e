"""What a route handler returns: status, JSON body (or raw bytes), extra headers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None

    def payload(self) -> bytes:
        if self.raw is not None:
            return self.raw
        if self.body is None:
            return b""
        return json.dumps(self.body).encode()


@dataclass
class Request:
    method: str
    path: str  # path below the API root, without the query string, no trailing slash
    params: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    base_url: str  # https://host:port

    def json(self) -> Any:
        return json.loads(self.body or b"null")
