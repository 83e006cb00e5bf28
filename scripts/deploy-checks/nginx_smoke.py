#!/usr/bin/env python3
"""Runs the real nginx with deploy/nginx/tradecore.conf and talks to it.

`nginx -t` proves the file parses; this proves it does what docs/deploy.md
says. The site file is used as is, except for what cannot be the same on a
CI machine: the listen ports (80/443 -> free loopback ports, IPv6 listeners
dropped), the certificate paths (a throwaway self-signed certificate), the
ACME webroot and the log directory (temporary directories). The upstream is a
small HTTP/WebSocket stub on loopback that echoes what nginx sent it.

Checked: HTTP -> HTTPS redirect to the configured name; ACME challenge files
served on port 80; TLS 1.2 and 1.3; HSTS and the fill-in security headers,
without duplicating the app's own; Host kept, X-Forwarded-For/-Proto and
X-Request-Id set and client-sent X-Forwarded-For overwritten; WebSocket
upgrade on /api/v1/ws; /metrics not served; body size limit (413); the
sign-in rate limit (429).

Usage: nginx_smoke.py NGINX_BIN SITE_CONF UPSTREAM_CONF WORKDIR
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

DOMAIN = "trade.example.com"
FAILURES: list[str] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stub(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _echo(self, status=200, extra=None):
        body = json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/api/v1/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", "stub")
            self.end_headers()
            self.wfile.flush()
            time.sleep(0.2)
            self.close_connection = True
            return
        if self.path == "/page":  # a dashboard page sets its own headers
            self._echo(extra={"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                              "Referrer-Policy": "same-origin", "Content-Security-Policy": "default-src 'self'"})
            return
        self._echo()

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        self._echo()


def expect(cond: bool, what: str) -> None:
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILURES.append(what)


def main() -> int:
    nginx, site, upstream, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    for sub in ("conf", "logs", "tls", "acme/.well-known/acme-challenge", "tmp"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    # nginx workers (nobody when run as root) must read the webroot.
    for p in [work, *work.parents][:-1]:
        if str(p).startswith(("/tmp", str(work))):
            os.chmod(p, os.stat(p).st_mode | 0o005)
    (work / "acme/.well-known/acme-challenge/token123").write_text("challenge-ok")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    f"/CN={DOMAIN}", "-keyout", str(work / "tls/privkey.pem"), "-out", str(work / "tls/fullchain.pem")],
                   check=True, capture_output=True)
    http_port, https_port, app_port = free_port(), free_port(), free_port()

    text = site.read_text()
    text = re.sub(r"^\s*listen \[::\]:.*\n", "", text, flags=re.M)
    text = re.sub(r"listen 80 ", f"listen 127.0.0.1:{http_port} ", text)
    text = re.sub(r"listen 443 ", f"listen 127.0.0.1:{https_port} ", text)
    text = text.replace(f"/etc/letsencrypt/live/{DOMAIN}", str(work / "tls"))
    text = text.replace("root /var/www/acme;", f"root {work / 'acme'};")
    text = text.replace("/var/log/nginx/", f"{work / 'logs'}/")
    # The redirect target keeps the real name; only the port is local here.
    (work / "conf/tradecore.conf").write_text(text)
    up = re.sub(r"server \S+:8080", f"server 127.0.0.1:{app_port}", upstream.read_text())
    (work / "conf/upstream.conf").write_text(up)
    (work / "conf/nginx.conf").write_text(f"""
pid {work}/nginx.pid;
error_log {work}/logs/error.log notice;
worker_processes 1;
events {{ worker_connections 256; }}
http {{
    access_log {work}/logs/access.log;
    client_body_temp_path {work}/tmp/body;
    proxy_temp_path {work}/tmp/proxy;
    fastcgi_temp_path {work}/tmp/fastcgi;
    uwsgi_temp_path {work}/tmp/uwsgi;
    scgi_temp_path {work}/tmp/scgi;
    include {work}/conf/upstream.conf;
    include {work}/conf/tradecore.conf;
}}
""")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", app_port), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # In the foreground, so that this process owns (and reaps) the master.
    proc = subprocess.Popen([nginx, "-p", f"{work}/", "-c", f"{work}/conf/nginx.conf", "-g", "daemon off;"],
                            stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(50):
            if (work / "nginx.pid").exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        if proc.poll() is not None:
            print(proc.stderr.read())
            return 1
        run_checks(http_port, https_port, work)
    finally:
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: nginx's fast shutdown
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        server.shutdown()
    print(f"{len(FAILURES)} failed")
    return 1 if FAILURES else 0


def run_checks(http_port: int, https_port: int, work: Path) -> None:
    c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
    c.request("GET", "/orders?x=1", headers={"Host": "evil.example.net"})
    r = c.getresponse()
    r.read()
    expect(r.status == 301 and r.getheader("Location") == f"https://{DOMAIN}/orders?x=1",
           f"port 80 redirects to https://{DOMAIN}/... whatever Host was sent (got {r.status} {r.getheader('Location')})")
    c.request("GET", "/.well-known/acme-challenge/token123", headers={"Host": DOMAIN})
    r = c.getresponse()
    expect(r.status == 200 and r.read() == b"challenge-ok", "ACME challenge served over plain HTTP")
    c.close()

    def tls(max_version=None):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if max_version:
            ctx.maximum_version = max_version
        conn = http.client.HTTPSConnection("127.0.0.1", https_port, timeout=5, context=ctx)
        return conn

    def get(path, headers=None, method="GET", body=None):
        conn = tls()
        h = {"Host": DOMAIN}
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r, data

    for version, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (None, "TLSv1.3")):
        conn = tls(version)
        conn.request("GET", "/", headers={"Host": DOMAIN})
        resp = conn.getresponse()
        resp.read()
        got = conn.sock.version() if conn.sock else None
        expect(resp.status == 200 and got == name, f"{name} negotiated and request proxied (got {got}, {resp.status})")
        conn.close()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", https_port), timeout=5), server_hostname=DOMAIN):
            old_tls = True
    except (ssl.SSLError, OSError):
        old_tls = False
    expect(not old_tls, "TLS 1.0/1.1 refused")

    r, data = get("/api/v1/orders", {"X-Forwarded-For": "6.6.6.6", "Origin": f"https://{DOMAIN}"})
    seen = json.loads(data)["headers"] if r.status == 200 else {}
    expect(r.status == 200, f"HTTPS request reaches the app (got {r.status})")
    expect(seen.get("host") == DOMAIN, f"Host kept for the app's Origin check (app saw {seen.get('host')!r})")
    expect(seen.get("x-forwarded-proto") == "https", "X-Forwarded-Proto: https")
    expect(seen.get("x-forwarded-for") == "127.0.0.1", f"client-sent X-Forwarded-For overwritten (app saw {seen.get('x-forwarded-for')!r})")
    expect(bool(re.fullmatch(r"[0-9a-f]{32}", seen.get("x-request-id", ""))), "X-Request-Id passed to the app")
    expect("upgrade" not in seen.get("connection", "").lower(), "plain requests are not upgrades")
    expect((r.getheader("Strict-Transport-Security") or "").startswith("max-age=63072000"), "HSTS header")
    expect(r.getheader("X-Content-Type-Options") == "nosniff", "X-Content-Type-Options filled in on API responses")
    expect(r.getheader("X-Frame-Options") == "DENY", "X-Frame-Options filled in on API responses")
    expect("nginx/" not in (r.getheader("Server") or ""), "no nginx version in Server")

    r, _ = get("/page")
    expect(len(r.headers.get_all("X-Frame-Options") or []) == 1, "app's own X-Frame-Options not duplicated")
    expect(len(r.headers.get_all("X-Content-Type-Options") or []) == 1, "app's own X-Content-Type-Options not duplicated")
    expect(r.getheader("Content-Security-Policy") == "default-src 'self'", "app's CSP passed through untouched")

    r, _ = get("/metrics")
    expect(r.status == 404, f"/metrics not served publicly (got {r.status})")

    r, _ = get("/api/v1/orders", method="POST", body=b"x" * (2 * 1024 * 1024),
               headers={"Content-Type": "application/json"})
    expect(r.status == 413, f"bodies over 1 MiB refused (got {r.status})")

    raw = socket.create_connection(("127.0.0.1", https_port), timeout=5)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ws = ctx.wrap_socket(raw, server_hostname=DOMAIN)
    ws.sendall((f"GET /api/v1/ws HTTP/1.1\r\nHost: {DOMAIN}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    status = ws.recv(1024).decode(errors="replace").split("\r\n", 1)[0]
    ws.close()
    expect(status.startswith("HTTP/1.1 101"), f"WebSocket upgrade on /api/v1/ws (got {status!r})")

    codes = [get("/api/v1/auth/login", method="POST", body=b"{}", headers={"Content-Type": "application/json"})[0].status
             for _ in range(10)]
    expect(429 in codes and codes[0] == 200, f"sign-in rate limit answers 429 after the burst (got {codes})")


if __name__ == "__main__":
    sys.exit(main())
