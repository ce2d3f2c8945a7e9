#!/usr/bin/env python3
"""Websocket load for bench/run: a DDP-ish upstream and a tunnel-holding client.

Raw asyncio, no third-party module, so that 10,000 connections cost the
driver little and every target gets the same client:

  ws.py upstream PORT
      A websocket server: answers the upgrade, echoes every data message
      back (unmasked, as a server does), answers a close with a close.

  ws.py hold --port P --pid PID --tunnels N [--rounds R] [--storm REDIS_PORT]
      Opens N websockets through the target at 127.0.0.1:P, then:
        open     N upgrades (handshake until the 101), 64 at a time;
        login    one DDP resume login per tunnel, a distinct token each
                 (the gate hashes it, checks the revoked set, watches it);
        idle     RSS of the target's process tree per open tunnel;
        message  R rounds of one ~150-byte DDP method call per tunnel,
                 each echoed back by the upstream (both directions cross
                 the target: a message is the round trip);
        close    with --storm: every tunnel's token revoked through Redis
                 (ZADD + PUBLISH, as the logout endpoint's script does) and
                 the time until every client socket has been closed by the
                 target; without: the client closes every tunnel.
      CPU is utime+stime of the target's process tree (/proc/PID/stat),
      over each phase, divided by its operations. Prints one JSON line.
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import subprocess
import sys
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def unmask(payload, key):
    if key == b"\0\0\0\0" or not payload:
        return bytes(payload)
    n = len(payload)
    keys = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big")


def frame(opcode, payload, masked):
    """One FIN frame; a client frame gets the all-zero masking key (a valid
    key that leaves the payload as is: the target still unmasks it)."""
    head = bytearray([0x80 | opcode])
    bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head.append(bit | n)
    elif n < 65536:
        head.append(bit | 126)
        head += n.to_bytes(2, "big")
    else:
        head.append(bit | 127)
        head += n.to_bytes(8, "big")
    if masked:
        head += b"\0\0\0\0"
    return bytes(head) + payload


def take_head(buf):
    """The HTTP head at the front of buf (removed from it), or None until it is complete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end])
    del buf[:end + 4]
    return head


def parse_frames(buf):
    """Complete frames at the start of buf: [(opcode, payload)], consumed."""
    out, pos = [], 0
    while True:
        if len(buf) - pos < 2:
            break
        b0, b1 = buf[pos], buf[pos + 1]
        n, at = b1 & 0x7F, pos + 2
        if n == 126:
            if len(buf) - at < 2:
                break
            n, at = int.from_bytes(buf[at:at + 2], "big"), at + 2
        elif n == 127:
            if len(buf) - at < 8:
                break
            n, at = int.from_bytes(buf[at:at + 8], "big"), at + 8
        key = None
        if b1 & 0x80:
            if len(buf) - at < 4:
                break
            key, at = bytes(buf[at:at + 4]), at + 4
        if len(buf) - at < n:
            break
        payload = bytes(buf[at:at + n])
        if key:
            payload = unmask(payload, key)
        out.append((b0 & 0x0F, payload))
        pos = at + n
    return out, pos


# ---------------------------------------------------------------- upstream

class Upstream(asyncio.Protocol):
    def connection_made(self, transport):
        self.t, self.buf, self.open = transport, bytearray(), False

    def data_received(self, data):
        self.buf += data
        if not self.open:
            head = take_head(self.buf)
            if head is None:
                return
            head = head.decode("latin-1")
            key = next((l.split(":", 1)[1].strip() for l in head.split("\r\n")
                        if l.lower().startswith("sec-websocket-key:")), "")
            accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
            self.t.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
            self.open = True
        frames, used = parse_frames(self.buf)
        del self.buf[:used]
        for opcode, payload in frames:
            if opcode in (1, 2):
                self.t.write(frame(opcode, payload, False))
            elif opcode == 8:
                self.t.write(frame(8, payload[:2], False))
                self.t.close()
            elif opcode == 9:
                self.t.write(frame(10, payload, False))


async def upstream(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


# ---------------------------------------------------------------- client

class Stats:
    def __init__(self):
        self.received = 0
        self.closed = 0
        self.close_codes = {}
        self.changed = asyncio.Event()

    def bump(self):
        self.changed.set()

    async def until(self, pred, timeout):
        deadline = time.monotonic() + timeout
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))
            except asyncio.TimeoutError:
                pass
        return True


class Client(asyncio.Protocol):
    def __init__(self, stats, opened):
        self.stats, self.opened = stats, opened
        self.buf, self.open, self.gone = bytearray(), False, False

    def connection_made(self, transport):
        self.t = transport

    def data_received(self, data):
        self.buf += data
        if not self.open:
            head = take_head(self.buf)
            if head is None:
                return
            ok = head.startswith(b"HTTP/1.1 101")
            self.open = ok
            if not self.opened.done():
                self.opened.set_result(ok)
            if not ok:
                self.t.close()
                return
        frames, used = parse_frames(self.buf)
        del self.buf[:used]
        for opcode, payload in frames:
            if opcode in (1, 2):
                self.stats.received += 1
            elif opcode == 8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0
                self.stats.close_codes[code] = self.stats.close_codes.get(code, 0) + 1
                self.t.close()
        self.stats.bump()

    def connection_lost(self, exc):
        if not self.opened.done():
            self.opened.set_result(False)
        if not self.gone:
            self.gone = True
            self.stats.closed += 1
            self.stats.bump()


def proc_tree(root):
    """(cpu ticks, rss KiB) of root and its descendants."""
    stats = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After "(comm)": state ppid ... utime stime ... rss (pages, field 24).
        stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[21]))
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _, _) in stats.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
    return (sum(stats[p][1] for p in tree if p in stats),
            sum(stats[p][2] for p in tree if p in stats) * page_kib)


def storm(redis_cli, redis_port, prefix, tokens):
    """Revoke every token as the logout script does: ZADD + PUBLISH each."""
    expiry = int(time.time()) + 86400
    out = []

    def cmd(*args):
        out.append(b"*%d\r\n" % len(args))
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))

    now_ms = int(time.time() * 1000)
    for token in tokens:
        h = base64.b64encode(hashlib.sha256(token.encode()).digest())
        cmd(b"ZADD", f"{prefix}revoked", expiry, h)
        cmd(b"PUBLISH", f"{prefix}revocations", h + b" %d %d" % (expiry, now_ms))
    subprocess.run([redis_cli, "-p", str(redis_port), "--pipe"], input=b"".join(out),
                   stdout=subprocess.DEVNULL, check=True, timeout=120)


async def hold(a):
    loop = asyncio.get_running_loop()
    hz = os.sysconf("SC_CLK_TCK")
    stats = Stats()
    run_id = os.urandom(6).hex()
    conns, errors = [], 0
    result = {"target": a.name, "tunnels": a.tunnels, "rounds": a.rounds}

    def phase_cpu(before, ops):
        ticks = proc_tree(a.pid)[0] - before
        return round(ticks / hz * 1e6 / ops, 1) if ops else None

    cpu0, rss0 = proc_tree(a.pid)
    result["rss_before_kib"] = rss0
    sem = asyncio.Semaphore(64)
    request = (f"GET /websocket HTTP/1.1\r\nHost: 127.0.0.1:{a.port}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode()

    async def open_one():
        nonlocal errors
        async with sem:
            opened = loop.create_future()
            try:
                _, proto = await asyncio.wait_for(
                    loop.create_connection(lambda: Client(stats, opened), "127.0.0.1", a.port), 30)
                proto.t.write(request)
                if await asyncio.wait_for(opened, 30):
                    conns.append(proto)
                    return
            except (OSError, asyncio.TimeoutError):
                pass
            errors += 1

    t0 = time.monotonic()
    await asyncio.gather(*(open_one() for _ in range(a.tunnels)))
    result["open_s"] = round(time.monotonic() - t0, 3)
    n = len(conns)
    result["opened"], result["open_errors"] = n, errors
    result["cpu_open_us"] = phase_cpu(cpu0, n)

    # One DDP resume login per tunnel: the token the storm revokes.
    tokens = [f"bench-ws-{run_id}-{i:06d}-" + "x" * 16 for i in range(n)]
    cpu1 = proc_tree(a.pid)[0]
    for i, c in enumerate(conns):
        login = ('{"msg":"method","method":"login","params":[{"resume":"%s"}],"id":"1"}'
                 % tokens[i]).encode()
        c.t.write(frame(1, login, True))
    ok = await stats.until(lambda: stats.received >= n, 60)
    result["cpu_login_us"] = phase_cpu(cpu1, n)
    result["login_echoed"] = stats.received

    await asyncio.sleep(a.settle)
    rss1 = proc_tree(a.pid)[1]
    result["rss_open_kib"] = rss1
    result["rss_per_tunnel_kb"] = round((rss1 - rss0) * 1.024 / n, 2) if n else None

    cpu2 = proc_tree(a.pid)[0]
    expect = stats.received
    t0 = time.monotonic()
    for r in range(a.rounds):
        for i, c in enumerate(conns):
            msg = ('{"msg":"method","method":"sendMessage","params":[{"_id":"m%d-%d",'
                   '"rid":"GENERAL","msg":"hello from tunnel %d, round %d"}],"id":"%d"}'
                   % (r, i, i, r, r + 2)).encode()
            c.t.write(frame(1, msg, True))
        expect += n
        ok = await stats.until(lambda: stats.received >= expect, 60) and ok
    result["message_s"] = round(time.monotonic() - t0, 3)
    result["cpu_message_us"] = phase_cpu(cpu2, n * a.rounds)
    result["echoed"] = stats.received
    result["all_echoed"] = ok
    rss2, peak = proc_tree(a.pid)[1], None
    result["rss_after_messages_kib"] = rss2

    cpu3 = proc_tree(a.pid)[0]
    t0 = time.monotonic()
    if a.storm:
        storm(a.redis_cli, a.storm, a.prefix, tokens)
        published = time.monotonic() - t0
        closed = await stats.until(lambda: stats.closed >= n, 120)
        result["storm_publish_s"] = round(published, 3)
        result["storm_close_s"] = round(time.monotonic() - t0, 3)
        result["storm_closed"] = stats.closed
        result["storm_all_closed"] = closed
        result["close_codes"] = {str(k): v for k, v in sorted(stats.close_codes.items())}
        result["cpu_storm_us"] = phase_cpu(cpu3, n)
    else:
        for c in conns:
            c.t.write(frame(8, (1000).to_bytes(2, "big"), True))
        await stats.until(lambda: stats.closed >= n, 60)
        result["client_close_s"] = round(time.monotonic() - t0, 3)
    for c in conns:
        c.t.close()
    await stats.until(lambda: stats.closed >= n, 10)
    print(json.dumps(result), flush=True)
    return 0 if n == a.tunnels and ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("upstream")
    u.add_argument("port", type=int)
    h = sub.add_parser("hold")
    h.add_argument("--name", default="target")
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--pid", type=int, required=True)
    h.add_argument("--tunnels", type=int, default=1000)
    h.add_argument("--rounds", type=int, default=5)
    h.add_argument("--settle", type=float, default=1.0)
    h.add_argument("--storm", type=int, help="redis port: revoke every token through it")
    h.add_argument("--prefix", default="sg:")
    h.add_argument("--redis-cli", default="redis-cli")
    a = p.parse_args()
    if a.cmd == "upstream":
        asyncio.run(upstream(a.port))
        return 0
    return asyncio.run(hold(a))


if __name__ == "__main__":
    sys.exit(main())
