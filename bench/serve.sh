#!/usr/bin/env bash
# Benchmark: blackbox_exporter's /probe endpoint against healthprobe serve's, in the same
# run, at the same concurrency: wrk drives /probe?module=http_2xx&target=… of each, both
# probing one loopback nginx. Prints probes per second, p99 latency, peak RSS and the CPU
# time spent per probe by each (and by nginx, the target), and healthprobe's ratios. Every
# process shares the machine's cores, so probes/s also depends on what wrk and nginx
# take; the CPU time per probe is the exporter's own cost.
#
#   bench/serve.sh                    # builds the static (musl) release binary first
#   HEALTHPROBE=path/to/healthprobe bench/serve.sh
#   CONNECTIONS=16 DURATION=20s bench/serve.sh
#
# Needs wrk, nginx and prometheus-blackbox-exporter from Debian (installed with apt-get
# if missing). Loopback only: it starts nginx and both exporters on 127.0.0.1 and stops
# them at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-16}
DURATION=${DURATION:-20s}
need=()
command -v wrk >/dev/null || need+=(wrk)
[[ -x /usr/sbin/nginx ]] || need+=(nginx-light)
command -v prometheus-blackbox-exporter >/dev/null || need+=(prometheus-blackbox-exporter)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
    apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# Debian starts the packaged services; this benchmark runs its own.
systemctl stop nginx prometheus-blackbox-exporter 2>/dev/null || true

source bench/release.sh

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

source bench/loopback.sh

# The target both exporters probe: nginx answering 200 from memory.
start_nginx
target="http://127.0.0.1:$web/health"

# blackbox_exporter with the module everyone starts from.
bb=$(free_port)
cat >"$work/blackbox.yml" <<'EOF'
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
EOF
prometheus-blackbox-exporter --config.file="$work/blackbox.yml" \
    --web.listen-address="127.0.0.1:$bb" --log.level=error &
pids+=($!)
bb_pid=$!

# healthprobe serve with the same module.
hp=$(free_port)
cat >"$work/checks.toml" <<EOF
[modules.http_2xx]
probe = "http"
target = "url"
timeout = "5s"
params = { expect-status = "200-299" }
EOF
"$HP" serve --config "$work/checks.toml" --listen "127.0.0.1:$hp" --max-probes 256 2>"$work/serve.log" &
pids+=($!)
hp_pid=$!

bb_url="http://127.0.0.1:$bb/probe?module=http_2xx&target=$target"
hp_url="http://127.0.0.1:$hp/probe?module=http_2xx&target=$target"
wait_for "$bb_url"
wait_for "$hp_url"
curl -s "$bb_url" | grep -qx 'probe_success 1' || {
    echo "bench/serve.sh: blackbox_exporter's probe failed" >&2
    exit 1
}
curl -s "$hp_url" | grep -qx 'probe_success 1' || {
    echo "bench/serve.sh: healthprobe's probe failed" >&2
    exit 1
}

# One wrk run: prints "probes/s p99-ms"; wrk's p99 comes from --latency, in us/ms/s.
load() {
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "$1" >"$work/wrk.out"
    # Errors (connections refused or reset, timeouts) are not in the latencies: shown.
    grep -E 'Socket errors|Non-2xx' "$work/wrk.out" >&2 || true
    local rate p99
    rate=$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.out")
    p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.out")
    if grep -q 'Non-2xx' "$work/wrk.out"; then
        echo "bench/serve.sh: some answers were not 200:" >&2
        cat "$work/wrk.out" >&2
        exit 1
    fi
    python3 - "$rate" "$p99" <<'PY'
import re, sys
rate, p99 = sys.argv[1], sys.argv[2]
value, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)", p99).groups()
ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
print(f"{float(rate):.0f} {ms:.2f}")
PY
}
peak_rss_mb() { # PID: the peak resident set so far
    awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"
}
cpu_ticks() { # PID...: user and system CPU time so far, in clock ticks (all threads)
    local pid sum=0
    for pid in "$@"; do
        sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$sum"
}
# nginx's master and its worker, which answers the probes.
nginx_pids() {
    echo "$nginx_pid" $(pgrep -P "$nginx_pid")
}
# One measured run: "probes/s p99-ms cpu-ms-per-probe nginx-cpu-ms-per-probe", the CPU
# time the exporter (and nginx) spent per answered probe during the run.
measure() { # PID URL
    local pid=$1 url=$2 before nginx_before rate p99
    before=$(cpu_ticks "$pid")
    nginx_before=$(cpu_ticks $(nginx_pids))
    read -r rate p99 < <(load "$url")
    python3 - "$rate" "$p99" "$before" "$(cpu_ticks "$pid")" "$nginx_before" \
        "$(cpu_ticks $(nginx_pids))" "$DURATION" "$(getconf CLK_TCK)" <<'PY'
import re, sys
rate, p99 = float(sys.argv[1]), sys.argv[2]
b0, b1, n0, n1 = map(int, sys.argv[3:7])
secs = float(re.fullmatch(r"([0-9.]+)s?", sys.argv[7]).group(1))
tck = int(sys.argv[8])
probes = rate * secs
print(f"{rate:.0f} {p99} {(b1 - b0) * 1000 / tck / probes:.3f} {(n1 - n0) * 1000 / tck / probes:.3f}")
PY
}

echo "wrk -c$CONNECTIONS -d$DURATION, both probing $target (nginx), $(nproc) cores"
# Warm both up the same way, then measure each in turn.
wrk -t2 -c"$CONNECTIONS" -d3s "$bb_url" >/dev/null
wrk -t2 -c"$CONNECTIONS" -d3s "$hp_url" >/dev/null
read -r bb_rate bb_p99 bb_cpu bb_nginx < <(measure "$bb_pid" "$bb_url")
read -r hp_rate hp_p99 hp_cpu hp_nginx < <(measure "$hp_pid" "$hp_url")
bb_rss=$(peak_rss_mb "$bb_pid")
hp_rss=$(peak_rss_mb "$hp_pid")

printf '\n| /probe of | probes/s | p99 | peak RSS | its CPU per probe | nginx CPU per probe |\n|---|---|---|---|---|---|\n'
printf '| blackbox_exporter %s | %s | %s ms | %s MB | %s ms | %s ms |\n' \
    "$(prometheus-blackbox-exporter --version 2>&1 | awk 'NR==1 {print $3}')" "$bb_rate" "$bb_p99" "$bb_rss" "$bb_cpu" "$bb_nginx"
printf '| healthprobe serve | %s | %s ms | %s MB | %s ms | %s ms |\n' "$hp_rate" "$hp_p99" "$hp_rss" "$hp_cpu" "$hp_nginx"
python3 - "$bb_rate" "$hp_rate" "$bb_p99" "$hp_p99" "$bb_rss" "$hp_rss" "$bb_cpu" "$hp_cpu" <<'PY'
import sys
bb_rate, hp_rate, bb_p99, hp_p99, bb_rss, hp_rss, bb_cpu, hp_cpu = map(float, sys.argv[1:])
print(f"\nhealthprobe / blackbox_exporter: {hp_rate / bb_rate:.2f}x the probes/s, "
      f"{hp_p99 / bb_p99:.2f}x the p99, {hp_rss / bb_rss:.2f}x the peak RSS, "
      f"{hp_cpu / bb_cpu:.2f}x the CPU per probe")
PY
