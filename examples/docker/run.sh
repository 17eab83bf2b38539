#!/usr/bin/env bash
# The Docker example, end to end: a service that never reaps children runs as PID 1 and
# wedges; healthprobe reports it unhealthy and leaves nothing behind, while the classic
# `sh -c 'wget … || exit 1'` check (the baseline) piles up zombies.
#
# Run as root:  examples/docker/run.sh
# It installs what is missing (docker.io, busybox-static, musl-tools with apt-get; the musl
# target with rustup), builds static binaries, starts its own dockerd in a temporary
# directory and stops it at exit.
#
# Environment:
#   BASELINE=0        skip the busybox/wget baseline container
#   SETTLE=30         seconds to wait after "unhealthy" before counting processes
#   KEEP_WORK=1       keep the whole temporary directory (on failure only its logs are kept)
#   CARGO_TARGET_DIR  where cargo builds (default: the repository's target/)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET=x86_64-unknown-linux-musl
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BASELINE=${BASELINE:-1}
SETTLE=${SETTLE:-30}
KEEP_WORK=${KEEP_WORK:-0}
# The example's Dockerfiles need only the classic builder; a newer docker CLI without the
# buildx plugin refuses `docker build` unless BuildKit is turned off.
export DOCKER_BUILDKIT=0

# shellcheck source=examples/docker/lib.sh
. "$HERE/lib.sh"

[[ $(id -u) == 0 ]] || die "run as root: this installs packages and starts its own dockerd"

# --- 1. what is missing --------------------------------------------------------------------

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v musl-gcc >/dev/null || missing+=(musl-tools) # ring (rustls) compiles C for musl
if [[ $BASELINE != 0 ]] && ! installed busybox-static; then missing+=(busybox-static); fi
apt_install "${missing[@]}"
if ! rustup target list --installed | grep -qx "$TARGET"; then
    log "adding the $TARGET target with rustup"
    rustup target add "$TARGET"
fi

# --- 2. static binaries --------------------------------------------------------------------

log "building healthprobe (release, $TARGET); from scratch this takes several minutes"
(cd "$ROOT" && cargo build --release --target "$TARGET" -p healthprobe)
HEALTHPROBE=$CARGO_TARGET_DIR/$TARGET/release/healthprobe
static_or_die "$HEALTHPROBE"

log "building fake-zipkin (release, $TARGET)"
cargo build --release --target "$TARGET" \
    --manifest-path "$HERE/fake-zipkin/Cargo.toml" --target-dir "$CARGO_TARGET_DIR/fake-zipkin"
FAKE_ZIPKIN=$CARGO_TARGET_DIR/fake-zipkin/$TARGET/release/fake-zipkin
static_or_die "$FAKE_ZIPKIN"
log "healthprobe: $(du -h "$HEALTHPROBE" | cut -f1), fake-zipkin: $(du -h "$FAKE_ZIPKIN" | cut -f1)"

# --- 3. a private dockerd --------------------------------------------------------------------

WORK=$(mktemp -d /tmp/hp-docker.XXXXXX)
CONTAINERS=()

cleanup() {
    local rc=$?
    set +e
    if [[ -n $DOCKERD_PID ]]; then
        for c in "${CONTAINERS[@]}"; do docker rm -f "$c" >/dev/null 2>&1; done
    fi
    stop_dockerd
    if [[ $KEEP_WORK == 1 ]]; then
        log "kept $WORK"
    elif [[ $rc != 0 ]]; then
        rm -rf "$WORK/data" "$WORK/exec" "$WORK/context"
        log "kept the logs in $WORK (dockerd.log, build-*.log)"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_dockerd

# --- 4. images -------------------------------------------------------------------------------

CTX=$WORK/context
mkdir -p "$CTX"
cp "$HEALTHPROBE" "$FAKE_ZIPKIN" "$HERE/Dockerfile" "$HERE/Dockerfile.baseline" \
    "$HERE/Dockerfile.checks" "$HERE/checks.toml" "$CTX/"
# healthprobe with one check, and with a checks file (run --config).
VARIANTS=(healthprobe checks)
if [[ $BASELINE != 0 ]]; then
    cp /bin/busybox "$CTX/busybox"
    static_or_die "$CTX/busybox"
    VARIANTS+=(baseline)
fi
for v in "${VARIANTS[@]}"; do
    case $v in
        baseline) file=Dockerfile.baseline ;;
        checks) file=Dockerfile.checks ;;
        *) file=Dockerfile ;;
    esac
    log "docker build -t healthprobe-example:$v -f $file"
    docker build -q -t "healthprobe-example:$v" -f "$CTX/$file" "$CTX" >/dev/null 2>"$WORK/build-$v.log" ||
        { cat "$WORK/build-$v.log" >&2; die "docker build ($v) failed"; }
done

# --- 5. the flow, once per container -----------------------------------------------------------

# health CONTAINER: its health status; fails, with its last output, if it stopped.
health() {
    if [[ $(docker inspect --format '{{.State.Running}}' "$1") != true ]]; then
        docker logs "$1" 2>&1 | tail -5 >&2
        die "$1 stopped"
    fi
    docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1"
}

# processes CONTAINER: lists the container's processes (host PIDs) and sets PROCS,
# ZOMBIES, and ORPHANS (processes whose parent is the container's PID 1: re-parented
# health-check children).
#
# `docker top` alone cannot count zombies: it lists the PIDs in the container's cgroup,
# and a process leaves its cgroup when it exits, so a zombie is never listed. Every
# zombie's parent is alive (else it would have been re-parented or reaped), so the
# zombies are the processes in /proc with state Z whose parent is one `docker top` lists.
PROCS= ZOMBIES= ORPHANS=
processes() {
    local c=$1 top pid1 zombies all
    pid1=$(docker inspect --format '{{.State.Pid}}' "$c")
    top=$(docker top "$c" -eo pid,ppid,stat,comm | awk 'NR > 1 { print $1, $2, $3, $4 }')
    zombies=$({ cat /proc/[0-9]*/stat 2>/dev/null || true; } |
        awk -v live="$(awk '{ print $1 }' <<<"$top" | tr '\n' ' ')" '
            BEGIN { n = split(live, l, " "); for (i = 1; i <= n; i++) in_container[l[i]] = 1 }
            {
                op = index($0, "("); cl = 0
                for (i = length($0); i > 0; i--) if (substr($0, i, 1) == ")") { cl = i; break }
                comm = substr($0, op + 1, cl - op - 1); gsub(/ /, "_", comm)
                split(substr($0, cl + 2), f, " ") # f[1] state, f[2] ppid
                if (f[1] == "Z" && (f[2] in in_container)) print $1, f[2], "Z", comm
            }')
    all=$(printf '%s\n%s\n' "$top" "$zombies" | grep . | sort -n)
    PROCS=$(wc -l <<<"$all")
    ZOMBIES=$(awk '$3 ~ /^Z/' <<<"$all" | wc -l)
    ORPHANS=$(awk -v p="$pid1" '$2 == p' <<<"$all" | wc -l)
    printf 'PID PPID STAT COMMAND\n%s\n' "$all" |
        awk 'NR <= 13 { printf "    %-8s %-8s %-5s %s\n", $1, $2, $3, $4 }'
    if ((PROCS > 12)); then echo "    … $((PROCS - 12)) more"; fi
    log "  docker top lists $(grep -c . <<<"$top") of them (zombies have left the container's cgroup)"
}

declare -A T_HEALTHY T_UNHEALTHY N_PROCS N_ZOMBIES N_ORPHANS
for v in "${VARIANTS[@]}"; do
    c=hp-example-$v
    echo
    log "=== $c (image healthprobe-example:$v) ==="
    docker inspect --format '    HEALTHCHECK {{json .Config.Healthcheck.Test}} interval={{.Config.Healthcheck.Interval}} timeout={{.Config.Healthcheck.Timeout}} retries={{.Config.Healthcheck.Retries}}' "healthprobe-example:$v"
    docker rm -f "$c" >/dev/null 2>&1 || true
    t0=$(now)
    docker run -d --name "$c" --network none "healthprobe-example:$v" >/dev/null
    CONTAINERS+=("$c")
    wait_health health "$c" healthy "$t0" 120
    T_HEALTHY[$v]=$WAITED
    log "  processes while healthy:"
    processes "$c"

    t1=$(now)
    log "  docker exec $c /fake-zipkin hang"
    docker exec "$c" /fake-zipkin hang | sed 's/^/    /'
    wait_health health "$c" unhealthy "$t1" 120
    T_UNHEALTHY[$v]=$WAITED
    log "  last health checks (docker inspect .State.Health.Log):"
    docker inspect --format '{{range .State.Health.Log}}{{.Start.Format "15:04:05.000"}} {{(.End.Sub .Start).Round 1000000}} exit={{.ExitCode}} {{json .Output}}{{println}}{{end}}' "$c" |
        grep . | tail -4 | cut -c1-150 | sed 's/^/    /'

    log "  waiting ${SETTLE} s with the service hung, then counting processes"
    sleep "$SETTLE"
    log "  processes in $c (status now: $(health "$c")):"
    processes "$c"
    N_PROCS[$v]=$PROCS N_ZOMBIES[$v]=$ZOMBIES N_ORPHANS[$v]=$ORPHANS
    log "  $c: $PROCS processes, $ZOMBIES zombies, $ORPHANS children of PID 1"
    docker rm -f "$c" >/dev/null
done

# --- 6. summary --------------------------------------------------------------------------------

echo
log "summary (processes counted ${SETTLE} s after the container turned unhealthy)"
printf '%-24s %-16s %-28s %-10s %-8s %s\n' container "time to healthy" "time to unhealthy after hang" processes zombies "children of PID 1"
for v in "${VARIANTS[@]}"; do
    printf '%-24s %-16s %-28s %-10s %-8s %s\n' "hp-example-$v" "${T_HEALTHY[$v]} s" \
        "${T_UNHEALTHY[$v]} s" "${N_PROCS[$v]}" "${N_ZOMBIES[$v]}" "${N_ORPHANS[$v]}"
done
echo "(processes include a health check in flight at the moment of counting, if any)"
for v in healthprobe checks; do
    if ((N_ZOMBIES[$v] != 0)); then
        die "the $v container has zombies"
    fi
done
if [[ $BASELINE != 0 ]]; then
    ((N_ZOMBIES[baseline] > 0)) ||
        log "warning: the baseline container has no zombies (was SETTLE=$SETTLE s long enough?)"
fi
log "done"
