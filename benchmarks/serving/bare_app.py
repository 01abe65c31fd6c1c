"""The ceiling for the cached path: a bare FastAPI endpoint returning pre-serialised JSON
for 10 items, run with the same uvicorn settings in the same benchmark run."""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Response

app = FastAPI()
BODY = orjson.dumps(
    {
        "user_id": "u1",
        "route": "cache",
        "model_version": "bare",
        "generated_at": "2026-01-01T00:00:00Z",
        "recommendations": [
            {"candidate_id": f"e{i}", "candidate_kind": "item", "score": 1.0 - i / 10,
             "rank": i + 1, "reason": "popular right now", "title": f"Event {i}"}
            for i in range(10)
        ],
    }
)  # fmt: skip


@app.get("/v1/recommendations")
def recommendations(user_id: str) -> Response:
    return Response(BODY, media_type="application/json")
