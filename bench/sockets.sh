#!/usr/bin/env bash
# How close to its --timeout healthprobe exits when a probe holds thousands of sockets at
# the deadline: the hostile test guest opens COUNT connections to a loopback listener and
# then waits forever. Prints, per run, when the verdict line arrived and when the process
# had exited (the kernel closes the sockets before that), both relative to the timeout.
#
#   bench/sockets.sh                            # debug build of the workspace
#   HEALTHPROBE=path/to/healthprobe COUNT=10000 TIMEOUT=3 RUNS=5 bench/sockets.sh
#
# Needs python3 and a file descriptor limit above COUNT (the soft limit is raised to the
# hard one).
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-10000}
TIMEOUT=${TIMEOUT:-3}
RUNS=${RUNS:-5}
ulimit -n "$(ulimit -Hn)"
if [[ -z ${HEALTHPROBE:-} ]]; then
    cargo build --locked -p healthprobe >&2
    HEALTHPROBE=target/debug/healthprobe
fi
HP=$(realpath "$HEALTHPROBE")
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2 >&2
cargo build --locked --release --manifest-path tests/guests/Cargo.toml -p hostile \
    --target wasm32-wasip2 --target-dir target/test-guests >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Precompiled, so compiling is not part of what is measured.
"$HP" compile target/test-guests/wasm32-wasip2/release/hostile.wasm -o "$work/hostile.cwasm" >&2

python3 - "$HP" "$work/hostile.cwasm" "$COUNT" "$TIMEOUT" "$RUNS" <<'EOF'
import socket, subprocess, sys, threading, time

hp, cwasm, count, timeout, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
print(f"{count} sockets open at a {timeout:g} s deadline ({hp})")
for run in range(runs):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    held = []
    def accept():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return
    threading.Thread(target=accept, daemon=True).start()
    port = listener.getsockname()[1]
    argv = [hp, "run", cwasm, "mode=sockets", f"address=127.0.0.1:{port}", f"count={count}",
            "--max-sockets", str(count), "--timeout", f"{timeout}s"]
    start = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE)
    line = p.stdout.readline().decode().strip()
    verdict = time.monotonic() - start
    p.wait()
    exited = time.monotonic() - start
    print(f"run {run + 1}: verdict at {verdict - timeout:+.3f} s, exit at {exited - timeout:+.3f} s "
          f"from the deadline, {len(held)} accepted: {line[:80]}")
    listener.close()
    for s in held:
        s.close()
    time.sleep(1)
EOF
