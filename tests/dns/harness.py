#!/usr/bin/env python3
"""Show which DNS queries a command sends, with nothing able to reach a real resolver.

The property under test: healthprobe sends no DNS query for a name its network policy
did not grant, whatever form the name takes (trailing dots, IDNA, IP-like spellings).
A query can carry data out of the machine, so "denied" is not enough: the query must
never be sent. Only a DNS server that sees the queries can show that.

The harness re-executes itself under ``unshare --net --mount``. Inside:

* ``lo`` is up and, with ``local`` routes for 0.0.0.0/0 and ::/0, every address is
  local: a query sent to any server (the configured one, a hard-coded 8.8.8.8, a
  systemd-resolved stub on 127.0.0.53) arrives at this harness's DNS server, which
  listens on port 53 of every address, UDP and TCP, and logs every question. Nothing
  leaves the private network namespace.
* /etc/resolv.conf, /etc/hosts and /etc/nsswitch.conf are bind-mounted over with minimal
  files (``nameserver 127.0.0.1``; only ``localhost``; ``hosts: files dns``), and nscd's
  socket directory is hidden, so the result does not depend on the machine's
  configuration and no lookup is handed to a daemon outside the namespace.
* The server answers A queries for names under ``.test`` with 127.0.0.1 (a positive
  control can resolve and connect), other names with NXDOMAIN.
* An HTTP server on 127.0.0.1 answers 200 to every GET; ``{port}`` in a case's command
  line is replaced by its port.

Input, as a JSON array on argv[1] or stdin: ``[{"label": L, "argv": [CMD, ARG...]}]``.
Each case runs in turn with the harness's environment, stdin from /dev/null. Output: one
JSON line, ``{"cases": [{"label", "code", "stdout", "stderr", "queries": [{"name",
"type", "via"}], "elapsed_ms"}], "port": N}``. Queries are
attributed to a case with a marker: after the case exits, the harness sends a marker
query of its own over UDP and over TCP and waits for the server to log it; the server
reads each transport in order, so every query the case sent was logged before its
marker, with no guess at how long delivery takes.

Exit status is 0 for a result or a skip ({"skip": reason}: not Linux, not root, no
unshare, no ip, namespaces refused); the caller decides whether a skip is a failure.
Unexpected errors print {"error": ...} and exit 2.

Python 3.11 standard library only.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

CASE_TIMEOUT = 30.0  # seconds; healthprobe bounds itself well below this
OUTPUT_LIMIT = 4096  # characters of a case's stdout or stderr put in the report
MARKER_SUFFIX = ".marker.harness.invalid"

QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
          33: "SRV", 64: "SVCB", 65: "HTTPS", 255: "ANY"}


class Skip(Exception):
    """The harness cannot run here; reported as {"skip": reason}."""


# --------------------------------------------------------------------------
# DNS server
# --------------------------------------------------------------------------


def parse_question(msg: bytes) -> tuple[str, int, int] | None:
    """(name, qtype, end of the question) of a query's first question, or None.

    The name is in presentation form without the final dot; a byte outside printable
    ASCII, or a dot inside a label, is written as \\DDD, so what was sent stays visible.
    """
    if len(msg) < 12 or struct.unpack("!H", msg[4:6])[0] < 1:
        return None
    pos, labels = 12, []
    while True:
        if pos >= len(msg):
            return None
        n = msg[pos]
        pos += 1
        if n == 0:
            break
        if n & 0xC0:  # a compression pointer has no place in a question
            return None
        label = msg[pos : pos + n]
        if len(label) != n:
            return None
        pos += n
        labels.append("".join(chr(b) if 0x21 <= b < 0x7F and b not in (0x2E, 0x5C) else f"\\{b:03d}"
                              for b in label))
    if pos + 4 > len(msg):
        return None
    qtype = struct.unpack("!H", msg[pos : pos + 2])[0]
    return ".".join(labels), qtype, pos + 4


def answer(msg: bytes, name: str, qtype: int, end: int) -> bytes:
    """The reply: A 127.0.0.1 for `.test` names, no data for their other types, NXDOMAIN
    for everything else."""
    (qid, flags) = struct.unpack("!HH", msg[:4])
    test = name.lower() == "test" or name.lower().endswith(".test")
    rcode = 0 if test else 3
    reply_flags = 0x8000 | (flags & 0x7900) | 0x0080 | rcode  # QR, opcode+RD copied, RA
    answers = b""
    if test and qtype == 1:
        answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 5, 4) + socket.inet_aton("127.0.0.1")
    header = struct.pack("!HHHHHH", qid, reply_flags, 1, 1 if answers else 0, 0, 0)
    return header + msg[12:end] + answers


class DnsServer:
    """Logs the question of every query on UDP and TCP port 53 of every local address."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[dict] = []
        self.markers: set[str] = set()
        self.seen = threading.Condition(self.lock)
        self.udp = self._bind(socket.SOCK_DGRAM)
        self.tcp = self._bind(socket.SOCK_STREAM)
        self.tcp.listen(64)
        for target in (self._serve_udp, self._serve_tcp):
            threading.Thread(target=target, daemon=True).start()

    @staticmethod
    def _bind(kind: int) -> socket.socket:
        # One dual-stack socket per transport: one marker per transport covers IPv4 and
        # IPv6 alike, since a socket's queue is read in arrival order.
        try:
            s = socket.socket(socket.AF_INET6, kind)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("::", 53))
            return s
        except OSError:
            s = socket.socket(socket.AF_INET, kind)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", 53))
            return s

    def _record(self, msg: bytes, via: str) -> bytes | None:
        q = parse_question(msg)
        with self.seen:
            if q is None:
                self.log.append({"name": None, "type": None, "via": via, "raw": msg[:64].hex()})
            elif q[0].endswith(MARKER_SUFFIX):
                self.markers.add(q[0])
            else:
                self.log.append({"name": q[0], "type": QTYPES.get(q[1], q[1]), "via": via})
            self.seen.notify_all()
        return None if q is None else answer(msg, *q)

    def _serve_udp(self) -> None:
        while True:
            msg, peer = self.udp.recvfrom(65535)
            reply = self._record(msg, "udp")
            if reply is not None:
                try:
                    self.udp.sendto(reply, peer)
                except OSError:
                    pass

    def _serve_tcp(self) -> None:
        # One connection at a time, in accept order: the marker connection is read only
        # after every connection made before it.
        while True:
            conn, _ = self.tcp.accept()
            with conn:
                conn.settimeout(2.0)
                try:
                    self._serve_tcp_conn(conn)
                except OSError:
                    pass

    def _serve_tcp_conn(self, conn: socket.socket) -> None:
        queries = 0
        while True:
            head = _recv_exact(conn, 2)
            if head is None:
                break
            msg = _recv_exact(conn, struct.unpack("!H", head)[0])
            if msg is None:
                break
            queries += 1
            reply = self._record(msg, "tcp")
            if reply is not None:
                conn.sendall(struct.pack("!H", len(reply)) + reply)
        if queries == 0:
            # A connection to port 53 is an attempt to resolve even without a question.
            with self.seen:
                self.log.append({"name": None, "type": None, "via": "tcp"})
                self.seen.notify_all()

    def mark(self, n: int) -> None:
        """Returns once every query sent before this call has been logged."""
        udp_name, tcp_name = f"udp{n}{MARKER_SUFFIX}", f"tcp{n}{MARKER_SUFFIX}"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.sendto(_query(n, udp_name), ("127.0.0.1", 53))
        with socket.create_connection(("127.0.0.1", 53), timeout=10) as t:
            msg = _query(n, tcp_name)
            t.sendall(struct.pack("!H", len(msg)) + msg)
            _recv_exact(t, 2)  # the start of the reply: the server has read the query
        with self.seen:
            if not self.seen.wait_for(lambda: {udp_name, tcp_name} <= self.markers, timeout=10):
                raise RuntimeError(f"the DNS server did not log the markers of case {n}")

    def take(self) -> list[dict]:
        with self.lock:
            taken, self.log = self.log, []
        return taken


def _query(qid: int, name: str) -> bytes:
    """A standard A query for `name` with the RD bit set."""
    labels = b"".join(bytes([len(l)]) + l.encode() for l in name.split("."))
    return struct.pack("!HHHHHH", qid & 0xFFFF, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", 1, 1)


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


# --------------------------------------------------------------------------
# HTTP server for the cases that get through
# --------------------------------------------------------------------------


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status":"UP"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


# --------------------------------------------------------------------------
# Inside the namespace
# --------------------------------------------------------------------------


def sh(*argv: str) -> None:
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {r.stderr.strip()}")


def isolate(tmp: str) -> None:
    sh("ip", "link", "set", "lo", "up")
    # Every address local: a query to any server at all lands on our port 53.
    sh("ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo")
    if os.path.exists("/proc/net/if_inet6"):
        sh("ip", "-6", "route", "add", "local", "::/0", "dev", "lo")
    files = {
        "/etc/resolv.conf": "nameserver 127.0.0.1\noptions attempts:1 timeout:1\n",
        "/etc/hosts": "127.0.0.1 localhost\n::1 localhost\n",
        "/etc/nsswitch.conf": "hosts: files dns\n",
    }
    for target, text in files.items():
        if not os.path.exists(target):
            if target == "/etc/nsswitch.conf":
                continue  # a C library without NSS (musl) reads the other two directly
            raise Skip(f"{target} does not exist: nothing to bind-mount over")
        source = os.path.join(tmp, os.path.basename(target))
        with open(source, "w") as f:
            f.write(text)
        sh("mount", "--bind", source, target)
        with open(target) as f:
            if f.read() != text:
                raise RuntimeError(f"bind-mounting over {target} did not take effect")
    # glibc asks nscd first when its socket exists; nscd lives outside the namespace.
    empty = os.path.join(tmp, "empty")
    os.mkdir(empty)
    for d in sorted({os.path.realpath(p) for p in ("/run/nscd", "/var/run/nscd")}):
        if os.path.isdir(d):
            sh("mount", "--bind", empty, d)


def run_case(case: dict, port: int) -> dict:
    argv = [a.replace("{port}", str(port)) for a in case["argv"]]
    start = time.monotonic()
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=CASE_TIMEOUT)
        code = r.returncode
        stdout, stderr = r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        code, stdout, stderr = "timeout", e.stdout or b"", e.stderr or b""
    return {
        "label": case.get("label", " ".join(argv)),
        "argv": argv,
        "code": code,
        "stdout": stdout.decode(errors="replace")[:OUTPUT_LIMIT],
        "stderr": stderr.decode(errors="replace")[:OUTPUT_LIMIT],
        "elapsed_ms": round((time.monotonic() - start) * 1000),
    }


def inside(cases: list[dict]) -> dict:
    with tempfile.TemporaryDirectory(prefix="dns-harness-") as tmp:
        isolate(tmp)
        dns = DnsServer()
        web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
        threading.Thread(target=web.serve_forever, daemon=True).start()
        port = web.server_address[1]
        # The harness's own plumbing first: the C library's resolver must reach the
        # server, or an empty log below would prove nothing.
        try:
            socket.getaddrinfo("harness-self-test.test", 80, type=socket.SOCK_STREAM)
        except OSError as e:
            raise RuntimeError(f"the harness's own lookup failed: {e}") from None
        dns.mark(0)
        own = dns.take()
        if not any(q["name"] == "harness-self-test.test" for q in own):
            raise RuntimeError(f"the harness's own lookup was not logged: {own}")
        results = []
        for i, case in enumerate(cases, start=1):
            result = run_case(case, port)
            dns.mark(i)
            result["queries"] = dns.take()
            results.append(result)
        web.shutdown()
        return {"port": port, "cases": results}


# --------------------------------------------------------------------------
# Outside: checks, then the namespace
# --------------------------------------------------------------------------


def outside(raw_cases: str) -> dict:
    if sys.platform != "linux":
        raise Skip("Linux only")
    if os.geteuid() != 0:
        raise Skip("needs root (network and mount namespaces, port 53, bind mounts)")
    for tool in ("unshare", "ip", "mount"):
        if shutil.which(tool) is None:
            raise Skip(f"{tool} not found")
    probe = subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise Skip(f"cannot create network and mount namespaces: {probe.stderr.strip()}")
    # unshare --mount makes every mount private: the bind mounts stay inside.
    r = subprocess.run(
        ["unshare", "--net", "--mount", sys.executable, os.path.abspath(__file__), "--inside"],
        input=raw_cases, capture_output=True, text=True, timeout=600,
    )
    lines = r.stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise RuntimeError(f"no result from inside the namespace (exit {r.returncode}): "
                           f"{r.stdout.strip()} {r.stderr.strip()}") from None
    if "error" in report:
        raise RuntimeError(f"inside the namespace: {report['error']} {r.stderr.strip()[-OUTPUT_LIMIT:]}")
    return report


def main() -> int:
    is_inside = sys.argv[1:2] == ["--inside"]
    args = sys.argv[2:] if is_inside else sys.argv[1:]
    raw = args[0] if args else sys.stdin.read()
    try:
        cases = json.loads(raw)
        if not isinstance(cases, list) or not all(
            isinstance(c, dict) and isinstance(c.get("argv"), list) and c["argv"] for c in cases
        ):
            raise ValueError('expected [{"label": L, "argv": [CMD, ARG...]}, ...]')
        report = inside(cases) if is_inside else outside(raw)
    except Skip as e:
        report = {"skip": str(e)}
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        return 2
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
