"""Replay popular faces against the cacheable URLs: hit rate of the in-process LRU at several byte caps.

10,000 ``GET /v1/models/{name}@{id}/faces/{seed}.png`` over 1,000 seeds whose popularity follows Zipf's law
(the k-th most popular seed drawn with weight 1/k^s), in one fixed order (``--seed``), against the app in
process (its lifespan, ASGI transport: no sockets), once per cache cap. Every 10th client revalidates with
the ETag it already holds (a browser with the face in its own cache): those are 304s, never rendered.
Prints, per cap, hits, misses, 304s and images rendered, from the app's own metrics.

    python -m bench.face_cache_replay                       # the demo checkpoint, caps 0 256K 1M 4M 64M
    python -m bench.face_cache_replay --requests 10000 --seeds 1000 --zipf 1.0 --caps 0 1048576
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import time
from pathlib import Path
from typing import Any

import httpx

from app.main import create_app
from app.runtime.settings import DEFAULT_CHECKPOINT, Settings


def workload(requests: int, seeds: int, zipf: float, seed: int) -> list[int]:
    """``requests`` seeds drawn with weight 1/rank^zipf; rank r is seed r * 7919 (popular seeds are not 0..k)."""
    rng = random.Random(seed)
    population = [r * 7919 for r in range(seeds)]
    weights = [1 / (r + 1) ** zipf for r in range(seeds)]
    return rng.choices(population, weights, k=requests)


def _metric(app: Any, name: str, **labels: str) -> float:
    registry = app.state.service.metrics.registry
    return sum(
        s.value for f in registry.collect() for s in f.samples if s.name == name and labels.items() <= s.labels.items()
    )


async def replay(checkpoint: Path, cap: int, seeds: list[int], revalidate_every: int) -> dict[str, Any]:
    app = create_app(Settings(checkpoint=checkpoint, device="cpu", face_cache_bytes=cap))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://b") as http:
        model = (await http.get("/v1/models")).json()["models"][0]
        base = f"/v1/models/{model['name']}@{model['model_id']}/faces"
        etags: dict[int, str] = {}
        statuses: dict[int, int] = {}
        start = time.perf_counter()
        for i, s in enumerate(seeds):
            headers = {"If-None-Match": etags[s]} if i % revalidate_every == 0 and s in etags else {}
            r = await http.get(f"{base}/{s}.png", headers=headers)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            etags[s] = r.headers["etag"]
        seconds = time.perf_counter() - start
        hits = _metric(app, "dcgan_face_cache_requests_total", outcome="hit")
        misses = _metric(app, "dcgan_face_cache_requests_total", outcome="miss")
        return {
            "cap_bytes": cap,
            "requests": len(seeds),
            "statuses": statuses,
            "not_modified_304": statuses.get(304, 0),
            "cache_hits": int(hits),
            "cache_misses": int(misses),
            "hit_rate": round(hits / max(1, hits + misses), 4),
            "images_rendered": int(_metric(app, "dcgan_images_generated_total")),
            "cache_bytes": int(_metric(app, "dcgan_face_cache_bytes")),
            "seconds": round(seconds, 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="export (default: the demo)")
    parser.add_argument("--requests", type=int, default=10_000, help="requests replayed (default 10000)")
    parser.add_argument("--seeds", type=int, default=1_000, help="distinct popular seeds (default 1000)")
    parser.add_argument("--zipf", type=float, default=1.0, help="popularity exponent s (default 1.0)")
    parser.add_argument("--seed", type=int, default=0, help="order of the replay (default 0)")
    parser.add_argument("--revalidate-every", type=int, default=10, help="every k-th request sends its ETag (10)")
    parser.add_argument(
        "--caps", type=int, nargs="+", default=[0, 256 << 10, 1 << 20, 4 << 20, 64 << 20], help="cache caps, bytes"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    seeds = workload(args.requests, args.seeds, args.zipf, args.seed)
    print(f"{args.requests} requests, {len(set(seeds))} distinct of {args.seeds} seeds, Zipf s={args.zipf}; "
          f"CPU: {platform.processor() or platform.machine()}")  # fmt: skip
    results = []
    for cap in args.caps:
        result = asyncio.run(replay(args.checkpoint, cap, seeds, args.revalidate_every))
        results.append(result)
        print(json.dumps(result))
    if args.json is not None:
        args.json.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=1)
        )


if __name__ == "__main__":
    main()
