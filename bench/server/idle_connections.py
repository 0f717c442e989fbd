#!/usr/bin/env python3
"""Memory per idle connection of `chorus serve`: its resident set before and after N clients
connect (and, second, after each sent one keep-alive request and waits), divided by N.
  bench/server/idle_connections.py [N=1000]"""
import os, re, socket, subprocess, sys, time

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
chorus = os.environ.get("CHORUS", os.path.join(root, "build/release/examples/chorus"))
model = os.environ.get("MODEL", os.path.join(root, "../shared/models/stories260K.gguf"))
n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

server = subprocess.Popen([chorus, "serve", "--model", f"stories={model}", "--port", "0", "--quiet",
                           "--timeout-header-ms", "600000"], stdout=subprocess.PIPE, text=True)
try:
    port = None
    for line in server.stdout:
        m = re.search(r"127\.0\.0\.1:(\d+)", line)
        if m: port = int(m.group(1))
        if "ready" in line: break
    time.sleep(0.5)
    base = rss_kib(server.pid)
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    time.sleep(1.0)
    connected = rss_kib(server.pid)
    for s in socks: s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    for s in socks:
        data = b""
        while b"}" not in data: data += s.recv(4096)
    time.sleep(1.0)
    after_request = rss_kib(server.pid)
    print(f"| connections | RSS before KiB | connected, idle | after one keep-alive request |")
    print(f"|---:|---:|---:|---:|")
    print(f"| {n} | {base} | {connected} (+{(connected - base) / n:.1f} KiB each) | {after_request} (+{(after_request - base) / n:.1f} KiB each) |")
    for s in socks: s.close()
finally:
    server.terminate()
    server.wait()
