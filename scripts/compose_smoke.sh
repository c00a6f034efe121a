#!/usr/bin/env bash
# compose_smoke.sh — the deployment, end to end, on a machine with a working Docker (no GPU needed):
#   1. `up -d --build` with the CPU override; wait until the service and Prometheus are healthy
#   2. POST /generate?n=16 through the published port: a PNG grid of 16 faces
#   3. Prometheus's query API returns dcgan_images_generated_total == the images generated
#   4. SIGTERM (`docker stop`) while requests are in flight: they all complete, the service exits 0
#   5. `down -v`, always (a trap), so nothing is left running
# It pulls nothing itself: the images the compose files name must be present or reachable.
# Needs docker, compose (v1 or v2), curl and python3 on the host. Exit status is non-zero on any
# failure. Not run by CI (no Docker engine there).
#
# Environment: COMPOSE (default: docker-compose, else `docker compose`), DCGAN_HOST_PORT (8000),
# PROMETHEUS_HOST_PORT (9090), COMPOSE_PROJECT_NAME (dcgan-faces-smoke, apart from your own stack),
# SMOKE_TIMEOUT_S (600: how long to wait for healthy), SMOKE_PNG (where to keep the grid).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${COMPOSE:-}" ]; then
  if command -v docker-compose >/dev/null; then COMPOSE=docker-compose; else COMPOSE="docker compose"; fi
fi
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-dcgan-faces-smoke}
export DCGAN_HOST_PORT=${DCGAN_HOST_PORT:-8000} PROMETHEUS_HOST_PORT=${PROMETHEUS_HOST_PORT:-9090}
TIMEOUT_S=${SMOKE_TIMEOUT_S:-600}
PNG=${SMOKE_PNG:-$(mktemp --suffix=.png)}
N=16
APP_URL=http://127.0.0.1:$DCGAN_HOST_PORT
PROM_URL=http://127.0.0.1:$PROMETHEUS_HOST_PORT
compose() { $COMPOSE -f docker-compose.yml -f docker-compose.cpu.yml "$@"; }
step() { printf '\n== %s [%s]\n' "$*" "$(date -u +%H:%M:%S)"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

teardown() {
  rc=$?
  if [ $rc -ne 0 ]; then
    step "failure (exit $rc): service logs"
    compose ps || true
    compose logs --no-color --tail=60 || true
  fi
  step "tear down: $COMPOSE down -v"
  compose down -v --remove-orphans || true
  exit $rc
}
trap teardown EXIT

health() {  # health of a compose service's container: starting | healthy | unhealthy | none
  local id
  id=$(compose ps -q "$1")
  [ -n "$id" ] || { echo none; return; }
  docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$id"
}

step "$COMPOSE -f docker-compose.yml -f docker-compose.cpu.yml up -d --build (project $COMPOSE_PROJECT_NAME)"
start=$(date +%s)
compose up -d --build
echo "built and started in $(( $(date +%s) - start ))s"
compose ps

step "wait for both services to be healthy (up to ${TIMEOUT_S}s)"
start=$(date +%s)
while :; do
  app=$(health app-cpu) prom=$(health prometheus)
  printf '  app-cpu: %-9s prometheus: %s\n' "$app" "$prom"
  [ "$app" = healthy ] && [ "$prom" = healthy ] && break
  [ "$app" = unhealthy ] || [ "$prom" = unhealthy ] && fail "a service is unhealthy"
  [ $(( $(date +%s) - start )) -lt "$TIMEOUT_S" ] || fail "not healthy within ${TIMEOUT_S}s"
  sleep 5
done
echo "both healthy $(( $(date +%s) - start ))s after start"
docker image inspect -f 'image {{index .RepoTags 0}}: {{.Size}} bytes' "$(docker inspect -f '{{.Image}}' "$(compose ps -q app-cpu)")"
echo "runs as uid $(compose exec -T app-cpu id -u)"
size=$(curl -fsS "$APP_URL/v1/model" | python3 -c '
import json, sys
m = json.load(sys.stdin)
print("model", m["model_id"], "on", m["device"], "config", m["config"], file=sys.stderr)
print(m["config"]["image_size"])')

step "POST $APP_URL/generate?n=$N"
headers=$(mktemp)
code=$(curl -sS -o "$PNG" -D "$headers" -w '%{http_code}' -X POST "$APP_URL/generate?n=$N")
grep -iE '^(content-type|x-seeds):' "$headers" | sed 's/^/  /'
rm -f "$headers"
[ "$code" = 200 ] || fail "HTTP $code from /generate"
python3 - "$PNG" "$N" "$size" <<'PY'
import math, struct, sys
path, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(path, "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit(f"FAIL: {path} is not a PNG")
width, height = struct.unpack(">II", data[16:24])
side = math.isqrt(n) * size  # n = 16: a 4 x 4 grid of faces
print(f"  PNG {width}x{height}, {len(data)} bytes -> {path}")
if width < side or height < side:
    sys.exit(f"FAIL: a grid of {n} faces of {size} px should be at least {side} px a side")
PY

step "Prometheus $PROM_URL/api/v1/query?query=dcgan_images_generated_total (expect $N)"
deadline=$(( $(date +%s) + 60 ))
while :; do
  value=$(curl -fsS "$PROM_URL/api/v1/query?query=dcgan_images_generated_total" | python3 -c '
import json, sys
answer = json.load(sys.stdin)
assert answer["status"] == "success", answer
for series in answer["data"]["result"]:
    print("  series", series["metric"], "=", series["value"][1], file=sys.stderr)
print(sum(float(s["value"][1]) for s in answer["data"]["result"]) if answer["data"]["result"] else "none")')
  echo "  dcgan_images_generated_total = $value"
  [ "$value" = "$N.0" ] && break
  [ "$(date +%s)" -lt "$deadline" ] || fail "Prometheus did not report $N images within 60s (last: $value)"
  sleep 2
done
curl -fsS "$PROM_URL/api/v1/targets" | python3 -c '
import json, sys
for t in json.load(sys.stdin)["data"]["activeTargets"]:
    print("  target", t["scrapeUrl"], "health", t["health"], "last scrape", t["lastScrape"])'

step "SIGTERM with 8 requests of 64 images in flight: docker stop --time 30 (compose's stop_grace_period)"
app_id=$(compose ps -q app-cpu)  # docker's own CLI: it signals within milliseconds, compose v1 takes ~1 s to start
inflight=$(mktemp -d)
for i in 1 2 3 4 5 6 7 8; do
  curl -sS -o /dev/null -w '%{http_code}\n' -X POST "$APP_URL/generate?n=64" >"$inflight/$i" 2>&1 &
done
sleep 0.1
t0=$(date +%s%N)
docker stop --time 30 "$app_id" >/dev/null
wait
echo "  stopped in $(( ($(date +%s%N) - t0) / 1000000 )) ms; in-flight responses: $(cat "$inflight"/* | tr '\n' ' ')"
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$app_id")
echo "  exit code $exit_code (137 would mean SIGKILL after the grace period)"
# Answers logged after the service saw the signal (its drain message, or uvicorn's own) were in flight at SIGTERM.
drained=$(compose logs --no-color app-cpu | sed -n '/SIGTERM\|Shutting down/,$p' | grep -c 'POST /generate?n=64' || true)
echo "  $drained of the 8 requests were still in flight at SIGTERM and were answered before exit:"
compose logs --no-color app-cpu | sed -n '/SIGTERM\|Shutting down/,$p' | sed 's/^/  /'
[ "$(cat "$inflight"/* | sort -u)" = 200 ] || fail "a request in flight at SIGTERM did not complete with 200"
[ "$exit_code" = 0 ] || fail "the service did not exit cleanly on SIGTERM"
rm -rf "$inflight"

step "PASS: healthy stack, $N-face PNG, Prometheus counter = $N, graceful stop"
