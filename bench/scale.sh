#!/usr/bin/env bash
# Benchmark: how serve's cost grows with the number of checks, beside Debian's Prometheus
# scraping Debian's blackbox_exporter for the same targets at the same interval, in the
# same run. For each N: N checks, half `tcp` to a loopback nginx's port, half `http` to its
# /health, every 10 s, held for DURATION; the same N targets as blackbox_exporter modules
# (tcp_connect, http_2xx) scraped by Prometheus every 10 s. Prints, per N and per side:
# CPU per check run (per probe), RSS at the end and its change over the second half,
# threads, memory mappings and descriptors (at the end and their change over the second
# half), the share of results that went stale (check runs or probes missing against one
# per target per interval), and the slowest answer of the health endpoints (/livez,
# /readyz?verbose, /health, /metrics for serve; /-/healthy and /metrics for the other two).
#
#   bench/scale.sh                     # N = 1000 5000 10000, DURATION=5m
#   COUNTS="10000" DURATION=10m bench/scale.sh
#   HEALTHPROBE=path/to/healthprobe bench/scale.sh
#
# Needs nginx, prometheus and prometheus-blackbox-exporter from Debian (installed with
# apt-get if missing). Loopback only; everything it starts is stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNTS=${COUNTS:-"1000 5000 10000"}
DURATION=${DURATION:-5m}
INTERVAL=10
need=()
[[ -x /usr/sbin/nginx ]] || need+=(nginx-light)
command -v prometheus >/dev/null || need+=(prometheus)
command -v prometheus-blackbox-exporter >/dev/null || need+=(prometheus-blackbox-exporter)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
    apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
systemctl stop nginx prometheus prometheus-blackbox-exporter 2>/dev/null || true

source bench/release.sh

secs=$(python3 -c "import sys, re; v, u = re.fullmatch(r'([0-9]+)(s|m)', '$DURATION').groups(); print(int(v) * (60 if u == 'm' else 1))")
work=$(mktemp -d)
pids=()
stop_all() { # the exporters of one N; nginx stays for the next
    local pid
    for pid in "${pids[@]}"; do
        [[ $pid == "${nginx_pid:-}" ]] && continue
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    pids=()
    if [[ -n ${nginx_pid:-} ]]; then pids+=("$nginx_pid"); fi
}
trap 'stop_all; kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
source bench/loopback.sh

# Figures of a set of processes: "cpu-ticks rss-kib threads mappings descriptors".
figures() {
    local pid cpu=0 rss=0 threads=0 maps=0 fds=0
    for pid in "$@"; do
        cpu=$((cpu + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
        rss=$((rss + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")))
        threads=$((threads + $(awk '/^Threads:/ {print $2}' "/proc/$pid/status")))
        maps=$((maps + $(wc -l <"/proc/$pid/maps")))
        fds=$((fds + $(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)))
    done
    echo "$cpu $rss $threads $maps $fds"
}
slowest() { # URL...: the slowest of one GET each, in ms
    local url worst=0 t
    for url in "$@"; do
        t=$(curl -s -o /dev/null -w '%{time_total}' --max-time 10 "$url" || echo 10)
        worst=$(python3 -c "print(max($worst, $t * 1000))")
    done
    echo "$worst"
}

ulimit -n "$(ulimit -Hn)"
start_nginx

printf '| checks | side | CPU per run | RSS end (2nd half) | threads | mappings (2nd half) | descriptors (2nd half) | stale | slowest health answer |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
for n in $COUNTS; do
    half=$((n / 2))
    # healthprobe serve with N checks.
    hp=$(free_port)
    python3 - "$n" "$half" "$web" >"$work/checks.toml" <<'PY'
import sys
n, half, port = map(int, sys.argv[1:])
for i in range(n):
    if i < half:
        print(f'[checks.t{i}]\nprobe = "tcp"\ninterval = "10s"\nparams = {{ address = "127.0.0.1:{port}" }}\n')
    else:
        print(f'[checks.h{i}]\nprobe = "http"\ninterval = "10s"\nparams = {{ url = "http://127.0.0.1:{port}/health" }}\n')
PY
    "$HP" serve --config "$work/checks.toml" --listen "127.0.0.1:$hp" 2>"$work/serve.log" &
    hp_pid=$!
    pids+=("$hp_pid")
    # blackbox_exporter and Prometheus with the same N targets: each target its own label,
    # so Prometheus keeps them apart.
    bb=$(free_port)
    pr=$(free_port)
    cat >"$work/blackbox.yml" <<'EOF'
modules:
  tcp_connect:
    prober: tcp
    timeout: 5s
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
EOF
    python3 - "$n" "$half" "$web" "$bb" >"$work/prometheus.yml" <<'PY'
import sys
n, half, port, bb = map(int, sys.argv[1:])
print("global: { scrape_interval: 10s, scrape_timeout: 5s }\nscrape_configs:")
for job, module, targets in [
    ("tcp", "tcp_connect", [(f"t{i}", f"127.0.0.1:{port}") for i in range(half)]),
    ("http", "http_2xx", [(f"h{i}", f"http://127.0.0.1:{port}/health") for i in range(half, n)]),
]:
    print(f"  - job_name: {job}\n    metrics_path: /probe\n    params: {{ module: [{module}] }}\n    static_configs:")
    for check, target in targets:
        print(f"      - {{ targets: ['{target}'], labels: {{ check: {check} }} }}")
    print("    relabel_configs:\n      - { source_labels: [__address__], target_label: __param_target }\n"
          f"      - {{ target_label: __address__, replacement: '127.0.0.1:{bb}' }}")
PY
    prometheus-blackbox-exporter --config.file="$work/blackbox.yml" \
        --web.listen-address="127.0.0.1:$bb" --log.level=error &
    bb_pid=$!
    pids+=("$bb_pid")
    rm -rf "$work/tsdb"
    prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
        --web.listen-address="127.0.0.1:$pr" --log.level=error &
    pr_pid=$!
    pids+=("$pr_pid")
    wait_for "http://127.0.0.1:$hp/livez" 60
    wait_for "http://127.0.0.1:$bb/-/healthy" 60
    wait_for "http://127.0.0.1:$pr/-/ready" 60

    runs() { # healthprobe's check runs so far, all results
        curl -s "http://127.0.0.1:$hp/metrics" | awk '/^healthprobe_check_runs_total\{/ {s += $2} END {print s + 0}'
    }
    scrapes() { # Prometheus's probes so far (blackbox_exporter's answers)
        curl -s "http://127.0.0.1:$pr/metrics" |
            awk '/^prometheus_target_interval_length_seconds_count\{/ {s += $2} END {print s + 0}'
    }
    hp_urls=("http://127.0.0.1:$hp/livez" "http://127.0.0.1:$hp/readyz?verbose" "http://127.0.0.1:$hp/health" "http://127.0.0.1:$hp/metrics")
    other_urls=("http://127.0.0.1:$bb/-/healthy" "http://127.0.0.1:$bb/metrics" "http://127.0.0.1:$pr/-/healthy")
    # The first interval fills everything up; measure from then on.
    sleep "$INTERVAL"
    read -r hp_cpu0 _ _ _ _ < <(figures "$hp_pid")
    read -r bb_cpu0 _ _ _ _ < <(figures "$bb_pid")
    read -r pr_cpu0 _ _ _ _ < <(figures "$pr_pid")
    runs0=$(runs)
    scrapes0=$(scrapes)
    hp_worst=0 other_worst=0
    half_at=$((SECONDS + secs / 2))
    end=$((SECONDS + secs))
    hp_mid="" bb_mid="" pr_mid=""
    while ((SECONDS < end)); do
        sleep 10
        hp_worst=$(python3 -c "print(max($hp_worst, $(slowest "${hp_urls[@]}")))")
        other_worst=$(python3 -c "print(max($other_worst, $(slowest "${other_urls[@]}")))")
        if [[ -z $hp_mid ]] && ((SECONDS >= half_at)); then
            hp_mid=$(figures "$hp_pid")
            bb_mid=$(figures "$bb_pid")
            pr_mid=$(figures "$pr_pid")
        fi
    done
    elapsed=$((secs))
    read -r hp_cpu1 hp_rss hp_threads hp_maps hp_fds < <(figures "$hp_pid")
    read -r bb_cpu1 bb_rss bb_threads bb_maps bb_fds < <(figures "$bb_pid")
    read -r pr_cpu1 pr_rss pr_threads pr_maps pr_fds < <(figures "$pr_pid")
    runs1=$(runs)
    scrapes1=$(scrapes)
    stale=$(curl -s "http://127.0.0.1:$hp/readyz?verbose" | grep -c 'stale' || true)
    python3 - <<PY
tck = $(getconf CLK_TCK)
n, secs, interval = $n, $elapsed, $INTERVAL
expected = n * secs / interval
for side, cpu0, cpu1, runs, end, mid, worst, extra in [
    ("healthprobe serve", $hp_cpu0, $hp_cpu1, $runs1 - $runs0, "$hp_rss $hp_threads $hp_maps $hp_fds", "$hp_mid", $hp_worst, f"; {$stale} checks stale at the end"),
    ("blackbox_exporter", $bb_cpu0, $bb_cpu1, $scrapes1 - $scrapes0, "$bb_rss $bb_threads $bb_maps $bb_fds", "$bb_mid", $other_worst, ""),
    ("Prometheus (scraping it)", $pr_cpu0, $pr_cpu1, $scrapes1 - $scrapes0, "$pr_rss $pr_threads $pr_maps $pr_fds", "$pr_mid", $other_worst, ""),
]:
    rss, threads, maps, fds = map(int, end.split())
    _, rss0, _, maps0, fds0 = map(int, mid.split())
    per_run = (cpu1 - cpu0) * 1000 / tck / max(runs, 1)
    missing = max(0.0, 1 - runs / expected)
    print(f"| {n} | {side} | {per_run:.3f} ms ({runs} runs) | {rss / 1024:.1f} MB ({(rss - rss0) / 1024:+.1f}) | {threads} "
          f"| {maps} ({maps - maps0:+d}) | {fds} ({fds - fds0:+d}) | {missing:.1%}{extra} | {worst:.0f} ms |")
PY
    stop_all
done
