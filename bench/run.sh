#!/usr/bin/env bash
# Benchmark: one health check by healthprobe against the tools it replaces, on the same
# machine in the same run. Prints the medians, the peak RSS and the ratios to wget and curl.
#
#   bench/run.sh                      # builds the static (musl) release binary first
#   HEALTHPROBE=path/to/healthprobe bench/run.sh
#   RUNS=50 bench/run.sh
#   LANGUAGES=1 bench/run.sh          # also the Python, JavaScript and C examples (built
#                                     # with examples/probes/build.sh)
#
# Needs hyperfine, wget, curl, python3, GNU time, redis-server and redis-cli (installed
# with apt-get if missing). Loopback only: it starts its own HTTP server and Redis on
# 127.0.0.1 and stops them at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-30}
need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v wget >/dev/null || need+=(wget)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
[[ -x /usr/bin/time ]] || need+=(time)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
if ((${#need[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

source bench/release.sh
# The bundled http probe as a user's .wasm file (built by host/build.rs).
WASM=$(realpath target/probes/wasm32-wasip2/release/probe_http.wasm)

work=$(mktemp -d)
server_pid=
redis_pid=
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true
    [[ -n $redis_pid ]] && kill "$redis_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# A tiny HTTP/1.1 server answering /health with {"status":"UP"}; it prints its port.
python3 - >"$work/port" <<'PY' &
import http.server, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        metrics = self.path == "/metrics"
        body = b'queue_depth{queue="jobs"} 3\n' if metrics else b'{"status":"UP"}'
        self.send_response(200)
        self.send_header("Content-Type", "text/plain" if metrics else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
server_pid=$!
for _ in $(seq 50); do [[ -s $work/port ]] && break; sleep 0.1; done
port=$(cat "$work/port")
url="http://127.0.0.1:$port/health"

redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

"$HP" compile "$WASM" -o "$work/http.cwasm" >/dev/null

declare -a names cmds
add() { names+=("$1"); cmds+=("$2"); }
add "/bin/true" "/bin/true"
add "wget -q -O-" "wget -q -O- $url"
add "curl -sf" "curl -sf $url"
add "healthprobe run http" "$HP run http url=$url"
add "healthprobe run tcp" "$HP run tcp address=127.0.0.1:$port"
add "redis-cli ping" "redis-cli -p $redis_port ping"
add "healthprobe run redis" "$HP run redis address=127.0.0.1:$redis_port"
add "http.wasm, first run (compiles)" "$HP run $WASM url=$url --no-cache"
add "http.wasm, from the cache" "$HP run $WASM url=$url --cache-dir $work/cache"
add "http.cwasm" "$HP run $work/http.cwasm url=$url"
if [[ -n ${LANGUAGES:-} ]]; then
    HEALTHPROBE=$HP examples/probes/build.sh >&2
    PY=$(realpath target/example-probes/prometheus-threshold.wasm)
    JS=$(realpath target/example-probes/actuator-health.wasm)
    C=$(realpath target/example-probes/http-latency.wasm)
    py_args="url=http://127.0.0.1:$port/metrics metric=queue_depth warn=100"
    js_args="url=$url"
    c_args="url=$url requests=1"
    "$HP" compile "$PY" -o "$work/py.cwasm" >/dev/null
    "$HP" compile "$JS" -o "$work/js.cwasm" >/dev/null
    "$HP" compile "$C" -o "$work/c.cwasm" >/dev/null
    add "python example, from the cache" "$HP run $PY $py_args --cache-dir $work/cache"
    add "python example, .cwasm" "$HP run $work/py.cwasm $py_args"
    add "javascript example, from the cache" "$HP run $JS $js_args --cache-dir $work/cache"
    add "javascript example, .cwasm" "$HP run $work/js.cwasm $js_args"
    add "c example, from the cache" "$HP run $C $c_args --cache-dir $work/cache"
    add "c example, .cwasm" "$HP run $work/c.cwasm $c_args"
fi

# The cached runs are measured as a health check meets them every 30 s: the entry is
# there, and it and the component have been left alone for more than two seconds, so the
# cache knows both by their identity (src/cache.rs) and reads neither.
for i in "${!cmds[@]}"; do
    if [[ ${cmds[$i]} == *--cache-dir* ]]; then
        ${cmds[$i]} >/dev/null 2>&1 || true
    fi
done
sleep 2.5

args=()
for i in "${!names[@]}"; do args+=(--command-name "${names[$i]}" "${cmds[$i]}"); done
hyperfine --style basic --warmup 5 --runs "$RUNS" -N --export-json "$work/h.json" "${args[@]}" >&2

rss() { # peak RSS in KiB, median of 5
    for _ in 1 2 3 4 5; do
        /usr/bin/time -f %M sh -c "exec $1 >/dev/null 2>&1" 2>&1 >/dev/null | tail -1
    done | sort -n | sed -n 3p
}

python3 - "$work/h.json" "$(for c in "${cmds[@]}"; do rss "$c"; done | paste -sd,)" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
rss = [int(x) for x in sys.argv[2].split(",")]
med = {r["command"]: r["median"] * 1000 for r in res}
wget, curl = med["wget -q -O-"], med["curl -sf"]
print(f"{'command':34} {'median ms':>9} {'peak RSS':>9} {'x wget':>7} {'x curl':>7}")
for r, kib in zip(res, rss):
    m = r["median"] * 1000
    print(f"{r['command']:34} {m:9.2f} {kib/1024:8.1f}M {m/wget:7.2f} {m/curl:7.2f}")
cached, cwasm = med["http.wasm, from the cache"], med["http.cwasm"]
print(f"cache / cwasm: {cached / cwasm:.2f}; redis: healthprobe / redis-cli: "
      f"{med['healthprobe run redis'] / med['redis-cli ping']:.2f}")
PY
if [[ -n ${LANGUAGES:-} ]]; then
    # A first run compiles the whole component; seconds each, so three runs, not hyperfine.
    echo "first run (compiles, --no-cache), median of 3: wall, peak RSS; component size"
    for probe in "$PY $py_args" "$JS $js_args" "$C $c_args"; do
        file=${probe%% *}
        for _ in 1 2 3; do
            /usr/bin/time -f "%e %M" sh -c "exec $HP run $probe --no-cache --timeout 60s >/dev/null 2>&1" 2>&1 | tail -1
        done | sort -n | sed -n 2p |
            awk -v f="$(basename "$file")" -v size="$(stat -c %s "$file")" \
                '{printf "%-28s %6.2f s %7.1fM   %.1f MB\n", f, $1, $2 / 1024, size / 1e6}'
    done
fi
ls -l "$HP" | awk '{printf "binary: %s, %.1f MB\n", $NF, $5 / 1e6}'
