#!/usr/bin/env python3
"""Soak under faults (run it through bench/soak). Standard library only.

Two sessiongate replicas share one private redis-server; a small upstream (this
file with --upstream) answers HTTP and websockets. For SOAK_SECONDS the driver
sends a fixed rate of mixed traffic to both gates and logs victims out through
the real endpoint with real TOTP codes, while Redis (SIGKILL, AOF on) and the
upstream are killed and restarted on a schedule. Checked continuously: a token
revoked more than MARGIN seconds ago never reaches the upstream (header →
forwarded without it, so the upstream answers its own 401; cookie → stripped). Checked at the end: no panic in either gate
log, every revoked token refused by BOTH gates, RSS flat, fds and sockets back
to their baseline once traffic stops.
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOTP_KEY = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MARGIN = 3.0  # seconds a revocation may take to reach the other replica (outages included)

# ---------------------------------------------------------------- upstream


UNAUTHORIZED = b'{"status":"error","message":"You must be logged in to do this."}'


class Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, body, status=200):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def seen(self, body=b""):
        return json.dumps(
            {
                "path": self.path,
                "cookie": self.headers.get("Cookie", ""),
                "token": self.headers.get("X-Auth-Token", ""),
                "body": len(body),
            }
        ).encode()

    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket()
        if self.path == "/api/v1/me" and not self.headers.get("X-Auth-Token"):
            # Rocket.Chat's own answer to an anonymous call of an authenticated route.
            return self.reply(UNAUTHORIZED, 401)
        self.reply(self.seen())

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.reply(self.seen(body))

    def websocket(self):
        key = self.headers.get("Sec-WebSocket-Key", "").encode()
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        sock = self.connection
        try:
            while True:
                opcode, payload = ws_read(sock)
                if opcode == 0x8:
                    sock.sendall(ws_frame(0x8, payload[:2], mask=False))
                    return
                if opcode in (0x1, 0x2):
                    sock.sendall(ws_frame(opcode, payload, mask=False))
                elif opcode == 0x9:
                    sock.sendall(ws_frame(0xA, payload, mask=False))
        except (OSError, EOFError):
            return


def run_upstream(port):
    server = ThreadingHTTPServer(("127.0.0.1", port), Upstream)
    server.daemon_threads = True
    server.serve_forever()


# -------------------------------------------------------------- websockets


def recv_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return out


def ws_frame(opcode, payload, mask=True):
    head = bytes([0x80 | opcode])
    bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_read(sock):
    b0, b1 = recv_exact(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", recv_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack(">Q", recv_exact(sock, 8))[0]
    key = recv_exact(sock, 4) if b1 & 0x80 else None
    payload = recv_exact(sock, n)
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return b0 & 0x0F, payload


# ------------------------------------------------------------------ helpers


def totp(step):
    key = base64.b32decode(SECRET)
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return "%06d" % (value % 1_000_000)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def http_get(port, path, headers=None, timeout=2.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def proc_stats(pid):
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    fds = os.listdir(f"/proc/{pid}/fd")
    sockets = 0
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                sockets += 1
        except OSError:
            pass
    return rss, len(fds), sockets


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.violations = []

    def inc(self, key, n=1):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def violation(self, text):
        with self.lock:
            self.violations.append(text)


# -------------------------------------------------------------------- soak


class Soak:
    def __init__(self, args):
        self.args = args
        self.bin = args.bin
        self.dir = tempfile.mkdtemp(prefix="sessiongate-soak-")
        self.stats = Stats()
        self.stop = threading.Event()
        self.redis_port = free_port()
        self.upstream_port = free_port()
        self.gates = []
        self.redis = None
        self.upstream = None
        self.lock = threading.Lock()
        self.revoked = {}  # token -> time it was known revoked
        self.victims = []  # (session id, token), not yet logged out
        self.used_steps = {}  # admin -> set of used TOTP steps
        self.samples = {0: [], 1: []}
        self.events = []

    # processes
    def start_redis(self):
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--dir", self.dir, "--appendonly", "yes", "--appendfsync", "always",
             "--save", "", "--logfile", os.path.join(self.dir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.redis_port):
            raise SystemExit("redis-server did not start")

    def start_upstream(self):
        self.upstream = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--upstream", str(self.upstream_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.upstream_port):
            raise SystemExit("upstream did not start")

    def start_gate(self, i):
        port, admin = free_port(), free_port()
        config = os.path.join(self.dir, f"gate{i}.toml")
        with open(config, "w") as f:
            f.write(
                f'listen = "127.0.0.1:{port}"\nupstream = "http://127.0.0.1:{self.upstream_port}"\n'
                f'[admin]\nlisten = "127.0.0.1:{admin}"\n'
                f'[redis]\nurl = "redis://127.0.0.1:{self.redis_port}/0"\n'
                f"[logout]\ndeny_delay_ms = 0\n")
        log = open(os.path.join(self.dir, f"gate{i}.log"), "w")
        env = dict(os.environ, SESSIONGATE_TOTP_KEY=TOTP_KEY)
        env.pop("SESSIONGATE_LOG", None)
        proc = subprocess.Popen([self.bin, "serve", "--config", config], env=env,
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if http_get(admin, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None:
                raise SystemExit(f"gate {i} exited early, see {log.name}")
            time.sleep(0.05)
        else:
            raise SystemExit(f"gate {i} not ready")
        self.gates.append({"proc": proc, "port": port, "admin": admin, "config": config, "log": log.name})

    def cli(self, *args):
        env = dict(os.environ, SESSIONGATE_TOTP_KEY=TOTP_KEY)
        out = subprocess.run([self.bin, *args, "--config", self.gates[0]["config"]],
                             env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"sessiongate {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def setup(self):
        for a in range(self.args.admins):
            self.cli("user", "put", f"admin{a}", "--username", f"admin{a}", "--roles", "admin")
            self.cli("totp", "import", f"admin{a}", "--secret", SECRET)
            self.cli("session", "add", "--user", f"admin{a}", f"--token=soak-admin-token-{a}",
                     "--id", f"soakAdminSess{a:04d}")
            self.used_steps[a] = set()
        self.cli("user", "put", "victim", "--username", "victim", "--roles", "user")
        for v in range(self.args.victims):
            sid, token = f"soakVictimSe{v:05d}", f"soak-victim-token-{v}"
            self.cli("session", "add", "--user", "victim", f"--token={token}", "--id", sid)
            self.victims.append((sid, token))

    def event(self, text):
        elapsed = time.time() - self.t0
        self.events.append(f"{elapsed:6.1f}s {text}")

    # traffic
    def live_token(self):
        with self.lock:
            return random.choice(self.victims)[1] if self.victims else "soak-anonymous"

    def old_revoked(self):
        now = time.time()
        with self.lock:
            old = [t for t, at in self.revoked.items() if now - at > MARGIN]
        return random.choice(old) if old else None

    def http_worker(self, gate_index, rate):
        gate = self.gates[gate_index]
        conn = None
        period = 1.0 / rate
        next_at = time.time()
        n = 0
        while not self.stop.is_set():
            next_at += period
            delay = next_at - time.time()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1:
                next_at = time.time()  # fell behind (outage): no burst
            n += 1
            kind = n % 10
            headers = {"Host": "chat.example"}
            revoked = None
            if kind < 2:
                revoked = self.old_revoked()
            if revoked and kind == 0:
                method, path, body = "GET", "/api/v1/me", None
                headers["X-Auth-Token"] = revoked
            elif revoked and kind == 1:
                method, path, body = "GET", "/home", None
                headers["Cookie"] = f"a=1; rc_token={revoked}; rc_uid=victim"
            elif kind < 6:
                method, path, body = "GET", f"/api/v1/channels.list?n={n}", None
                headers["X-Auth-Token"] = self.live_token()
            else:
                method, path = "POST", "/api/v1/chat.postMessage"
                body = json.dumps({"n": n, "text": "x" * (n % 512)}).encode()
                headers["X-Auth-Token"] = self.live_token()
                headers["Content-Type"] = "application/json"
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", gate["port"], timeout=5)
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                self.stats.inc("http_transport_errors")
                if conn:
                    conn.close()
                conn = None
                continue
            self.stats.inc(f"http_{status}")
            # 502/504 while the upstream is being restarted: it never saw the token either.
            if revoked and kind == 0 and (status not in (401, 502, 504) or revoked.encode() in data):
                self.stats.violation(f"gate{gate_index}: revoked header token answered {status}")
            if revoked and kind == 1:
                if status == 200 and revoked.encode() in data:
                    self.stats.violation(f"gate{gate_index}: revoked rc_token cookie reached the upstream")
                self.stats.inc("revoked_cookie_checks")
            if revoked and kind == 0:
                self.stats.inc("revoked_header_checks")
        if conn:
            conn.close()

    def ws_session(self, gate_index):
        gate = self.gates[gate_index]
        token = self.live_token()
        try:
            sock = socket.create_connection(("127.0.0.1", gate["port"]), timeout=3)
        except OSError:
            self.stats.inc("ws_connect_errors")
            return
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall(
                (f"GET /websocket HTTP/1.1\r\nHost: chat.example\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                 f"Cookie: rc_token={token}\r\n\r\n").encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    raise EOFError
                head += chunk
            if not head.startswith(b"HTTP/1.1 101"):
                self.stats.inc("ws_refused")
                return
            self.stats.inc("ws_opened")
            for i in range(random.randint(2, 10)):
                if self.stop.is_set():
                    break
                message = json.dumps({"msg": "method", "method": "ping", "id": str(i)}).encode()
                sock.sendall(ws_frame(0x1, message))
                opcode, payload = ws_read(sock)
                if opcode == 0x8:
                    code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 0
                    self.stats.inc(f"ws_closed_by_gate_{code}")
                    return
                if payload != message:
                    self.stats.violation("websocket echo mismatch")
                self.stats.inc("ws_messages")
                time.sleep(0.3)
            sock.sendall(ws_frame(0x8, struct.pack(">H", 1000)))
            self.stats.inc("ws_closed_cleanly")
        except (OSError, EOFError):
            self.stats.inc("ws_io_errors")
        finally:
            sock.close()

    def ws_worker(self, interval):
        n = 0
        threads = []
        while not self.stop.wait(interval):
            n += 1
            t = threading.Thread(target=self.ws_session, args=(n % 2,), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(timeout=5)

    def pick_admin(self):
        step = int(time.time()) // 30
        for a in random.sample(range(self.args.admins), self.args.admins):
            for s in (step, step - 1, step + 1):
                if s not in self.used_steps[a]:
                    return a, s
        return None, None

    def logout_worker(self, rate):
        n = 0
        retry = []
        while not self.stop.wait(1.0 / rate):
            with self.lock:
                if retry:
                    victim = retry.pop(0)
                elif self.victims:
                    victim = self.victims.pop(0)
                else:
                    self.stats.inc("logout_no_victims_left")
                    continue
            admin, step = self.pick_admin()
            if admin is None:
                with self.lock:
                    retry.append(victim)
                self.stats.inc("logout_no_code_available")
                continue
            self.used_steps[admin].add(step)
            n += 1
            gate = self.gates[n % 2]
            sid, token = victim
            headers = {"X-User-Id": f"admin{admin}", "X-Auth-Token": f"soak-admin-token-{admin}",
                       "x-2fa-code": totp(step), "Content-Type": "application/json"}
            conn = http.client.HTTPConnection("127.0.0.1", gate["port"], timeout=10)
            try:
                conn.request("POST", "/api/v1/sessions/logout",
                             body=json.dumps({"sessionId": sid}), headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                status, body = 0, b""
            finally:
                conn.close()
            self.stats.inc(f"logout_{status}")
            if status == 200:
                with self.lock:
                    self.revoked[token] = time.time()
            elif status == 404 and victim in getattr(self, "ambiguous", set()):
                # A 503 whose revocation did commit (Redis died after the script ran).
                with self.lock:
                    self.revoked[token] = time.time()
                self.stats.inc("logout_confirmed_after_503")
            elif status in (0, 503):
                self.ambiguous = getattr(self, "ambiguous", set()) | {victim}
                with self.lock:
                    retry.append(victim)
            else:
                self.stats.violation(f"logout answered {status}: {body[:200]!r}")
                with self.lock:
                    self.victims.append(victim)

    def sampler(self, interval):
        while not self.stop.wait(interval):
            for i, gate in enumerate(self.gates):
                try:
                    self.samples[i].append((time.time() - self.t0, *proc_stats(gate["proc"].pid)))
                except OSError:
                    pass

    def chaos(self, duration):
        smoke = duration < 60
        redis_every, redis_down = (duration * 0.3, 2.0) if smoke else (60.0, 5.0)
        up_every, up_down = (duration * 0.6, 1.5) if smoke else (90.0, 3.0)
        next_redis, next_up = redis_every, up_every
        while not self.stop.wait(0.2):
            now = time.time() - self.t0
            if now >= next_redis and now < duration - redis_down - 2:
                self.redis.kill()
                self.redis.wait()
                self.event(f"redis SIGKILL, down {redis_down:.0f}s")
                self.stats.inc("redis_kills")
                time.sleep(redis_down)
                self.start_redis()
                self.event("redis restarted")
                next_redis += redis_every
            if now >= next_up and now < duration - up_down - 2:
                self.upstream.kill()
                self.upstream.wait()
                self.event(f"upstream SIGKILL, down {up_down:.1f}s")
                self.stats.inc("upstream_kills")
                time.sleep(up_down)
                self.start_upstream()
                self.event("upstream restarted")
                next_up += up_every

    # run
    def run(self):
        a = self.args
        self.start_redis()
        self.start_upstream()
        self.start_gate(0)
        self.start_gate(1)
        t_setup = time.time()
        self.setup()
        setup_secs = time.time() - t_setup
        time.sleep(1)
        baseline = [proc_stats(g["proc"].pid) for g in self.gates]
        self.t0 = time.time()
        workers = [
            threading.Thread(target=self.http_worker, args=(0, a.rate / 2), daemon=True),
            threading.Thread(target=self.http_worker, args=(1, a.rate / 2), daemon=True),
            threading.Thread(target=self.ws_worker, args=(a.ws_interval,), daemon=True),
            threading.Thread(target=self.logout_worker, args=(a.logout_rate,), daemon=True),
            threading.Thread(target=self.sampler, args=(a.sample_secs,), daemon=True),
            threading.Thread(target=self.chaos, args=(a.seconds,), daemon=True),
        ]
        for w in workers:
            w.start()
        time.sleep(a.seconds)
        self.stop.set()
        for w in workers:
            w.join(timeout=30)
        run_secs = time.time() - self.t0
        if self.redis.poll() is not None:
            self.start_redis()
        if self.upstream.poll() is not None:
            self.start_upstream()

        # Final checks, after the feed has settled.
        time.sleep(MARGIN)
        lost = []
        for token in list(self.revoked):
            for i, gate in enumerate(self.gates):
                status = None
                for _ in range(3):
                    try:
                        status = http_get(gate["port"], "/api/v1/me", {"X-Auth-Token": token})[0]
                        break
                    except OSError:
                        time.sleep(0.5)
                if status != 401:
                    lost.append((i, token, status))
        # Idle: pooled upstream connections expire (4 s), client sockets are closed.
        time.sleep(6)
        end = [proc_stats(g["proc"].pid) for g in self.gates]
        panics = []
        for gate in self.gates:
            with open(gate["log"], errors="replace") as f:
                panics += [line.strip() for line in f if "panicked" in line]
        alive = [g["proc"].poll() is None for g in self.gates]
        return self.report(baseline, end, lost, panics, alive, run_secs, setup_secs)

    def report(self, baseline, end, lost, panics, alive, run_secs, setup_secs):
        a = self.args
        c = self.stats.counts
        failures = []
        if panics:
            failures.append(f"{len(panics)} panics in gate logs")
        if not all(alive):
            failures.append("a gate process died")
        if lost:
            failures.append(f"{len(lost)} lost revocations: {lost[:5]}")
        if self.stats.violations:
            failures.append(f"{len(self.stats.violations)} violations: {self.stats.violations[:5]}")
        if not self.revoked:
            failures.append("no revocation happened")
        rows = []
        for i in (0, 1):
            samples = self.samples[i]
            warm = [s for s in samples if s[0] >= min(30.0, a.seconds * 0.25)] or samples
            rss_first, rss_last = warm[0][1], warm[-1][1]
            rss_max = max(s[1] for s in samples)
            growth = rss_last - rss_first
            if growth > max(16 * 1024, rss_first // 2):
                failures.append(f"gate{i} RSS grew {growth} KiB")
            fd_leak = end[i][1] - baseline[i][1]
            sock_leak = end[i][2] - baseline[i][2]
            if fd_leak > 4 or sock_leak > 4:
                failures.append(f"gate{i} fds {baseline[i][1]}→{end[i][1]}, sockets {baseline[i][2]}→{end[i][2]}")
            rows.append(
                f"| gate{i} | {baseline[i][0]} | {rss_first} | {rss_last} | {rss_max} | "
                f"{baseline[i][1]} / {baseline[i][2]} | {max(s[2] for s in samples)} / {max(s[3] for s in samples)} | "
                f"{end[i][1]} / {end[i][2]} |")
        result = "PASS" if not failures else "FAIL"
        counts = "\n".join(f"| `{k}` | {v} |" for k, v in sorted(c.items()))
        http_total = sum(v for k, v in c.items() if k.startswith("http_"))
        text = f"""# Soak under faults — {result}

`bench/soak{' --smoke' if a.seconds < 60 else ''}`: {run_secs:.0f} s of traffic against two gates
(debug build) sharing one redis-server (AOF, SIGKILLed on a schedule) in front of a
python upstream (SIGKILLed on a schedule). Setup through the CLI took {setup_secs:.1f} s
({a.admins} admins with TOTP, {a.victims} victim sessions).

Traffic: {a.rate:g} HTTP requests/s (GET and POST, live tokens; revoked tokens in the
`X-Auth-Token` header and in the `rc_token` cookie), a websocket every {a.ws_interval:g} s
(2–10 echoed DDP messages each), {a.logout_rate:g} logouts/s through
`POST /api/v1/sessions/logout` with real TOTP codes, alternating gates.

## Result

- panics in gate logs: **{len(panics)}**
- revocations: **{len(self.revoked)}**; lost (not refused by both gates at the end): **{len(lost)}**
- continuous checks: {c.get('revoked_header_checks', 0)} revoked-header requests (all must reach the upstream without the token and get its 401),
  {c.get('revoked_cookie_checks', 0)} revoked-cookie requests (cookie must not reach the upstream);
  violations: **{len(self.stats.violations)}**
- HTTP requests answered: {http_total}; transport errors (upstream/Redis restarts): {c.get('http_transport_errors', 0)}
- failures: {'none' if not failures else '; '.join(failures)}

## Memory and descriptors (RSS in KiB; fds / sockets)

| gate | RSS before traffic | RSS after warm-up | RSS last | RSS max | fds/sockets before | max during | after traffic + 6 s idle |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

## Faults

{chr(10).join('- ' + e for e in self.events) or '- none'}

## Counters

| counter | value |
|---|---|
{counts}
"""
        with open(a.out, "w") as f:
            f.write(text)
        print(text)
        # Last line, so a caller that shows only the tail still sees the verdict.
        print(f"soak: {result}" + ("" if not failures else ": " + "; ".join(failures)))
        return 0 if not failures else 1

    def cleanup(self):
        self.stop.set()
        for gate in self.gates:
            gate["proc"].kill()
        for proc in (self.redis, self.upstream):
            if proc and proc.poll() is None:
                proc.kill()


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--upstream":
        return run_upstream(int(sys.argv[2]))
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--out")
    args = p.parse_args()
    args.seconds = float(os.environ.get("SOAK_SECONDS", "20" if args.smoke else "600"))
    args.rate = float(os.environ.get("SOAK_RATE", "40"))
    args.logout_rate = float(os.environ.get("SOAK_LOGOUT_RATE", "0.5"))
    args.ws_interval = float(os.environ.get("SOAK_WS_INTERVAL", "1"))
    args.sample_secs = 1.0 if args.smoke else 5.0
    args.admins = int(os.environ.get("SOAK_ADMINS", "12"))
    args.victims = int(args.seconds * args.logout_rate * 1.3) + 10
    here = os.path.dirname(os.path.abspath(__file__))
    if not args.out:
        args.out = os.path.join(tempfile.gettempdir(), "SOAK-smoke.md") if args.smoke else os.path.join(here, "SOAK.md")
    soak = Soak(args)
    code = 1
    try:
        code = soak.run()
        return code
    finally:
        soak.cleanup()
        if code == 0:
            shutil.rmtree(soak.dir, ignore_errors=True)
        else:
            print(f"logs kept in {soak.dir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
