# Shell helpers shared by examples/docker/run.sh and scripts/image: logging, a private
# dockerd, waiting for a container's health status, and counting its zombies.
# Source it from bash with `set -euo pipefail`; callers set WORK (a temporary directory)
# before start_dockerd.

log() { printf '[%s] %s\n' "$(date +%H:%M:%S.%3N)" "$*"; }
die() {
    log "error: $*" >&2
    exit 1
}
now() { printf '%s' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# installed PACKAGE: whether a Debian package is installed.
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# apt_install PACKAGE...: installs what is given, updating the package lists if needed.
apt_install() {
    (($#)) || return 0
    log "installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "$@" >/dev/null ||
        { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "$@" >/dev/null; } ||
        die "apt-get install $* failed"
}

# static_or_die BINARY
static_or_die() {
    [[ -x $1 ]] || die "$1 was not built"
    if ldd "$1" 2>&1 | grep -q '=>'; then die "$1 is dynamically linked"; fi
}

# start_dockerd: a dockerd of our own in $WORK (vfs storage, no iptables, no bridge), with
# DOCKER_HOST pointing at it; stop_dockerd stops it and unmounts what it left.
DOCKERD_PID=
start_dockerd() {
    log "starting dockerd in $WORK (vfs, no iptables, no bridge)"
    dockerd --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none \
        --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" \
        --host "unix://$WORK/docker.sock" >"$WORK/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    export DOCKER_HOST=unix://$WORK/docker.sock
    for _ in $(seq 150); do
        docker version >/dev/null 2>&1 && break
        kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -20 "$WORK/dockerd.log" >&2; die "dockerd exited"; }
        sleep 0.2
    done
    docker version >/dev/null 2>&1 || { tail -20 "$WORK/dockerd.log" >&2; die "dockerd did not come up in 30 s"; }
    log "dockerd $(docker version --format '{{.Server.Version}}') is up (pid $DOCKERD_PID)"
}
stop_dockerd() {
    [[ -n $DOCKERD_PID ]] || return 0
    log "stopping dockerd (pid $DOCKERD_PID)"
    kill -TERM "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$DOCKERD_PID" 2>/dev/null && kill -KILL "$DOCKERD_PID" 2>/dev/null
    wait "$DOCKERD_PID" 2>/dev/null
    DOCKERD_PID=
    # Anything dockerd left mounted below the work directory (network namespaces).
    awk -v w="$WORK" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m"; done
}

# wait_health STATUS-COMMAND CONTAINER WANT SINCE LIMIT: polls `STATUS-COMMAND CONTAINER`
# (which prints the container's health status) until it prints WANT, logging every
# transition with the seconds since SINCE; fails after LIMIT seconds. Sets WAITED.
WAITED=
wait_health() {
    local status=$1 c=$2 want=$3 t0=$4 limit=$5 last= s
    while :; do
        s=$("$status" "$c")
        if [[ $s != "$last" ]]; then
            log "  $c: ${last:-(none)} -> $s  (+$(since "$t0") s)"
            last=$s
        fi
        if [[ $s == "$want" ]]; then
            WAITED=$(since "$t0")
            return 0
        fi
        awk -v e="$(since "$t0")" -v l="$limit" 'BEGIN { exit !(e > l) }' &&
            die "$c did not become $want within $limit s"
        sleep 0.2
    done
}

# zombies_in PID1: the zombies in the container whose PID 1 has host PID PID1, as
# "PID PPID COMMAND" lines. A zombie has left its cgroup (so `docker top` never lists
# one) and its namespaces are gone, but its parent is alive and still in the container's
# PID namespace: that is how it is found, for Docker and Podman alike.
zombies_in() {
    local ns pid stat rest ppid
    ns=$(readlink "/proc/$1/ns/pid")
    for pid in /proc/[0-9]*; do
        stat=$(cat "$pid/stat" 2>/dev/null) || continue
        rest=${stat##*) }
        [[ ${rest%% *} == Z ]] || continue
        ppid=$(awk '{ print $2 }' <<<"$rest")
        [[ $(readlink "/proc/$ppid/ns/pid" 2>/dev/null) == "$ns" ]] || continue
        comm=${stat#*(}
        printf '%s %s %s\n' "${pid#/proc/}" "$ppid" "${comm%)*}"
    done
}
