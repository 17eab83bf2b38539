#!/usr/bin/env python3
"""Reproduce the Docker HEALTHCHECK zombie leak without Docker.

The failure (openzipkin/zipkin#3670): a HEALTHCHECK such as
``sh -c 'wget -qO- URL || exit 1'`` that overruns ``--timeout`` is SIGKILLed by
Docker, but only the process Docker started (the shell) is killed. Its child
(wget) is re-parented to the container's PID 1; when wget later exits it stays a
``<defunct>`` zombie forever if PID 1 never calls wait() (a JVM, for example).
One zombie accumulates per timed-out check.

This harness builds the same situation on a plain Linux host, as root:

* ``unshare --pid --fork --mount-proc python3 harness.py --pid1`` creates a PID
  namespace whose PID 1 (this file in ``--pid1`` mode) serves a loopback
  "/health" endpoint that accepts connections and never answers, never calls
  wait() and leaves SIGCHLD at its default disposition (like a JVM).
* A Docker-like monitor (this file, outside the namespace) runs every check
  inside that namespace, the way ``docker exec`` does, and SIGKILLs only the
  check's own process when it overruns ``--kill-after`` seconds.
* After ``--settle`` seconds it counts, in the HOST /proc, the processes whose
  parent is the namespace's PID 1: state Z is a leaked zombie, anything else a
  live orphan. It prints one JSON line and tears the namespace down.

Usage::

    harness.py [--label L] [--checks N] [--kill-after S] [--interval S]
               [--settle S] -- COMMAND ARG...      # "{url}" is substituted

The baseline is ``sh -c 'wget -q -t 1 -T 2 -O- {url} || exit 1'``. dash forks
for ``cmd || exit 1`` (some shells exec a lone command: then there would be no
child to orphan). GNU wget retries a timed-out read up to 20 times, so without
``-t 1`` the orphans stay alive for minutes and show up as live orphans rather
than zombies; busybox wget (Alpine, the zipkin image) gives up after ``-T``.

Exit status is 0 for a result or a skip ({"skip": reason}: not root, no
unshare, no setns, missing wget, ...); the caller decides whether a skip is a
failure. Unexpected errors print {"error": ...} and exit 2.

Python 3.11 standard library only: os.setns only appeared in 3.12, so setns(2)
is called through ctypes.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import ctypes.util
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

CLONE_NEWPID = 0x20000000
OUTPUT_LIMIT = 64 * 1024  # bytes read from one check's output
OUTPUT_SHOWN = 200  # characters of one check's output put in the report
OUTPUTS_KEPT = 3  # how many checks' outputs are put in the report


class Skip(Exception):
    """The reproduction cannot run here; reported as {"skip": reason}."""


# --------------------------------------------------------------------------
# PID 1 of the namespace
# --------------------------------------------------------------------------


def pid1_main() -> None:
    """Behave like a JVM as PID 1: serve, never reap.

    SIGCHLD is explicitly set to SIG_DFL: if it were SIG_IGN (which an
    inherited disposition could make it), the kernel would auto-reap orphans
    and the reproduction would falsely show no zombies.
    """
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Port 0 and report the port back: no window in which another process
    # could take a port picked in advance. The network namespace is shared
    # with the host, so the monitor and the checks reach it on loopback.
    server.bind(("127.0.0.1", 0))
    server.listen(512)
    sys.stdout.write(f"{server.getsockname()[1]}\n")
    sys.stdout.flush()
    held = []  # keep every connection open so that clients hang until their timeout
    while True:
        conn, _ = server.accept()
        held.append(conn)


# --------------------------------------------------------------------------
# /proc helpers (host view: the monitor stays in the host mount namespace, so
# its /proc is the host's, unlike the namespace's --mount-proc /proc)
# --------------------------------------------------------------------------


def read_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may contain spaces and parentheses: split after the LAST ')'.
    fields = data[data.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def status_field(pid: int, name: str) -> str | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return line.split(":", 1)[1].strip()
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def host_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def children_of(ppid: int) -> list[tuple[int, str]]:
    """(pid, state) of every process whose host-visible parent is ppid.

    /proc/<pid>/task/<tid>/children needs CONFIG_PROC_CHILDREN, which many
    kernels lack, so scan /proc instead. Threads of a process are not
    /proc/<pid> entries, so the server's own threads never show up here.
    """
    found = []
    for pid in host_pids():
        st = read_stat(pid)
        if st is not None and st[1] == ppid:
            found.append((pid, st[0]))
    return found


# --------------------------------------------------------------------------
# The namespace
# --------------------------------------------------------------------------


class Namespace:
    """A PID namespace whose PID 1 never reaps, started with util-linux unshare."""

    def __init__(self) -> None:
        unshare = shutil.which("unshare")
        if unshare is None:
            raise Skip("util-linux unshare not found")
        # --fork: unshare(CLONE_NEWPID) only affects children of the caller,
        # so unshare must fork for the target to become PID 1 of the new
        # namespace. --mount-proc gives the namespace its own /proc (and a new
        # mount namespace), the monitor keeps reading the host's.
        self.proc = subprocess.Popen(
            [unshare, "--pid", "--fork", "--mount-proc",
             sys.executable, os.path.abspath(__file__), "--pid1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.init_pid: int | None = None
        line = self._read_line(timeout=10)
        if not line.strip().isdigit():
            self.proc.kill()
            err = self.proc.stderr.read().decode(errors="replace").strip()
            self.proc.wait()
            raise Skip(f"cannot create a PID namespace with unshare: {err or 'no output'}")
        self.port = int(line)
        self.url = f"http://127.0.0.1:{self.port}/health"
        self.init_pid = self._find_init()
        self.ns_path = f"/proc/{self.init_pid}/ns/pid"
        self._check_init()

    def _read_line(self, timeout: float) -> str:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return ""
        return self.proc.stdout.readline().decode(errors="replace")

    def _find_init(self) -> int:
        """Host PID of the namespace's PID 1: the only child of unshare."""
        kids = [pid for pid, _ in children_of(self.proc.pid)]
        if len(kids) != 1:
            raise RuntimeError(f"expected one child of unshare ({self.proc.pid}), found {kids}")
        return kids[0]

    def _check_init(self) -> None:
        # NSpid lists the PID in every namespace from the host's down: the
        # namespace's init must read "<host pid> 1".
        nspid = (status_field(self.init_pid, "NSpid") or "").split()
        if nspid[-1:] != ["1"] or len(nspid) < 2:
            raise RuntimeError(f"process {self.init_pid} is not PID 1 of a new namespace (NSpid {nspid})")
        sigign = int(status_field(self.init_pid, "SigIgn") or "0", 16)
        if sigign & (1 << (signal.SIGCHLD - 1)):
            raise RuntimeError("namespace PID 1 ignores SIGCHLD: the kernel would auto-reap orphans")

    def orphans(self) -> list[tuple[int, str]]:
        """Processes re-parented to the namespace's PID 1 (it forks none itself)."""
        return children_of(self.init_pid)

    def close(self) -> None:
        # Killing PID 1 of a PID namespace makes the kernel kill every process
        # in it, zombies' fate included; unshare then exits.
        if self.init_pid is not None:
            try:
                os.kill(self.init_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()


# --------------------------------------------------------------------------
# Running one check inside the namespace, Docker-style
# --------------------------------------------------------------------------


def load_setns():
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    try:
        fn = libc.setns
    except AttributeError:
        raise Skip("libc has no setns") from None
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def _middle(setns, ns_fd: int, argv: list[str], out_w: int, ctl_w: int, ack_r: int) -> None:
    """Child A: stays OUTSIDE the namespace, starts B inside it, reaps B.

    This is the role of runc/containerd-shim for `docker exec`. setns with
    CLONE_NEWPID does not move the caller, it only decides the namespace of
    its future children, hence the second fork. B's parent (A) is in another
    namespace, so when B dies its children are re-parented to the namespace's
    PID 1, exactly like in a container. Never returns.
    """
    code = 125
    try:
        if setns(ns_fd, CLONE_NEWPID) != 0:
            err = ctypes.get_errno()
            os.write(ctl_w, f"error setns: {os.strerror(err)}\n".encode())
            os._exit(code)
        pid = os.fork()
        if pid == 0:  # B, inside the namespace: becomes the check command
            try:
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)
                os.dup2(out_w, 1)  # Docker keeps stdout and stderr of a check
                os.dup2(out_w, 2)
                os.execvp(argv[0], argv)
            except BaseException as e:  # exec failed: report like a shell
                try:
                    os.write(2, f"exec {argv[0]}: {e}\n".encode())
                finally:
                    os._exit(127)
        os.close(out_w)
        # fork() in A returns B's PID as seen from A's namespace: the host's.
        os.write(ctl_w, f"pid {pid}\n".encode())
        # Do not reap B before the monitor holds a pidfd on it: a reaped PID
        # could be reused, and the monitor would kill or watch a stranger.
        os.read(ack_r, 1)
        _, status = os.waitpid(pid, 0)
        os.write(ctl_w, f"status {status}\n".encode())
        code = 0
    except BaseException as e:
        try:
            os.write(ctl_w, f"error {e}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(code)


class CheckResult:
    def __init__(self, code: str, killed: bool, output: str) -> None:
        self.code, self.killed, self.output = code, killed, output


def run_check(setns, ns_fd: int, argv: list[str], kill_after: float) -> CheckResult:
    out_r, out_w = os.pipe()
    ctl_r, ctl_w = os.pipe()
    ack_r, ack_w = os.pipe()
    a_pid = os.fork()
    if a_pid == 0:
        os.close(out_r)
        os.close(ctl_r)
        os.close(ack_w)
        _middle(setns, ns_fd, argv, out_w, ctl_w, ack_r)
    os.close(out_w)
    os.close(ctl_w)
    os.close(ack_r)
    ctl = os.fdopen(ctl_r, "rb")
    pidfd = None
    try:
        line = ctl.readline().decode().strip()
        if not line.startswith("pid "):
            raise RuntimeError(f"check did not start: {line or 'no report from the middle process'}")
        b_pid = int(line.split()[1])
        started = time.monotonic()
        pidfd = os.pidfd_open(b_pid)  # B is A's unreaped child: this cannot miss
        os.write(ack_w, b"1")
        # The trap this guards against: killing a wrapper outside the
        # namespace instead of the process the check runs as.
        nspid = (status_field(b_pid, "NSpid") or "").split()
        if len(nspid) == 1:
            raise RuntimeError(f"check process {b_pid} is not inside the namespace (NSpid {nspid})")

        # Watch B's pidfd (readable when B exits) and collect its output. Do
        # not wait for EOF on the pipe: orphans of B still hold its write end.
        output = bytearray()
        os.set_blocking(out_r, False)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(out_r, select.POLLIN)
        sent_kill = False
        exited = False
        while not exited:
            remaining = started + kill_after - time.monotonic()
            if remaining <= 0 and not sent_kill:
                # Like Docker's --timeout: SIGKILL the process it started, and
                # only that one; its children are left to the namespace.
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                sent_kill = True
            timeout_ms = None if sent_kill else max(1, int(remaining * 1000))
            for fd, _ in poller.poll(timeout_ms):
                if fd == pidfd:
                    exited = True
                elif fd == out_r:
                    _drain(out_r, output, poller)
        _drain(out_r, output, None)

        line = ctl.readline().decode().strip()
        if not line.startswith("status "):
            raise RuntimeError(f"no exit status for check: {line or 'middle process died'}")
        status = int(line.split()[1])
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            code = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        else:
            code = str(os.WEXITSTATUS(status))
        killed = sent_kill and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        return CheckResult(code, killed, output.decode(errors="replace").strip())
    finally:
        if pidfd is not None:
            os.close(pidfd)
        os.close(out_r)
        os.close(ack_w)
        ctl.close()
        os.waitpid(a_pid, 0)


def _drain(fd: int, buf: bytearray, poller) -> None:
    """Read what the check wrote so far, without blocking."""
    while len(buf) < OUTPUT_LIMIT:
        try:
            chunk = os.read(fd, OUTPUT_LIMIT - len(buf))
        except BlockingIOError:
            return
        if not chunk:  # EOF: every writer is gone
            if poller is not None:
                poller.unregister(fd)
            return
        buf += chunk
    if poller is not None:  # enough output: stop listening
        poller.unregister(fd)


def preflight(setns, ns_fd: int) -> None:
    """setns can be refused (seccomp, missing capability): skip, do not fail."""
    pid = os.fork()
    if pid == 0:
        os._exit(0 if setns(ns_fd, CLONE_NEWPID) == 0 else 1)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise Skip("setns(CLONE_NEWPID) refused")


def needs_wget(argv: list[str]) -> bool:
    """True if the command runs a `wget` binary (not `busybox wget`)."""
    words = re.findall(r"[^\s;&|()'\"]+", " ".join(argv))
    return any(w == "wget" and (i == 0 or words[i - 1] != "busybox") for i, w in enumerate(words))


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pid1", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--label", default="scenario")
    p.add_argument("--checks", type=int, default=50)
    p.add_argument("--kill-after", type=float, default=0.5, help="SIGKILL a check after S seconds")
    p.add_argument("--interval", type=float, default=0.05, help="pause between checks")
    p.add_argument("--settle", type=float, default=3.0, help="wait before counting orphans")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARG... ({url} is substituted)")
    args = p.parse_args()
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.pid1 and not args.command:
        p.error("a check command is required after --")
    return args


def run(args: argparse.Namespace) -> dict:
    if sys.platform != "linux":
        raise Skip("Linux only")
    if os.geteuid() != 0:
        raise Skip("needs root (PID namespaces and setns)")
    if not hasattr(os, "pidfd_open"):
        raise Skip("os.pidfd_open unavailable")
    if shutil.which(args.command[0]) is None:
        raise Skip(f"{args.command[0]} not found")
    if needs_wget(args.command) and shutil.which("wget") is None:
        raise Skip("wget not found")
    setns = load_setns()

    ns = Namespace()
    try:
        ns_fd = os.open(ns.ns_path, os.O_RDONLY)
        try:
            preflight(setns, ns_fd)
            argv = [a.replace("{url}", ns.url) for a in args.command]
            killed = 0
            codes: collections.Counter[str] = collections.Counter()
            outputs: list[str] = []
            for i in range(args.checks):
                if i:
                    time.sleep(args.interval)
                r = run_check(setns, ns_fd, argv, args.kill_after)
                killed += r.killed
                codes[r.code] += 1
                if len(outputs) < OUTPUTS_KEPT:
                    outputs.append(r.output[:OUTPUT_SHOWN])
        finally:
            os.close(ns_fd)
        # Orphans still running (wget inside its own -T) only become zombies
        # when they exit: give them time before counting.
        time.sleep(args.settle)
        orphans = ns.orphans()
    finally:
        ns.close()
    zombies = sum(1 for _, state in orphans if state == "Z")
    return {
        "scenario": args.label,
        "checks": args.checks,
        "killed": killed,
        "exit_codes": dict(sorted(codes.items())),
        "zombies": zombies,
        "live_orphans": len(orphans) - zombies,
        "outputs": outputs,
    }


def main() -> int:
    args = parse_args()
    if args.pid1:
        pid1_main()
        return 0
    try:
        report = run(args)
    except Skip as e:
        print(json.dumps({"skip": str(e)}), flush=True)
        return 0
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        return 2
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
