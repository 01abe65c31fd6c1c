"""The ceiling for the cached path: a bare FastAPI endpoint returning pre-serialised JSON
for 10 items, run in the same benchmark run with the same uvicorn settings as
``matchwise serve`` (its HTTP protocol and options, the same event loop, the access log
on or off as on the other side).

    python benchmarks/serving/bare_app.py --port 18766 [--workers 1] [--access-log]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson
import uvicorn
from fastapi import FastAPI, Response

from matchwise.api.server import uvicorn_options

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args()
    uvicorn.run(
        "bare_app:app",
        app_dir=str(Path(__file__).resolve().parent),
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        log_level="info",
        access_log=args.access_log,
        **uvicorn_options(),
    )


if __name__ == "__main__":
    main()
