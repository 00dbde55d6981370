#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for the remote tests.

Usage: faultproxy.py UPSTREAM_PORT PORT_FILE COUNT_FILE [--every N] [--stall-every M] [--stall S]

Listens on 127.0.0.1 (a free port, written to PORT_FILE) and forwards every
request to 127.0.0.1:UPSTREAM_PORT unchanged (the Host header too, so SigV4
signatures stay valid), except:
  - every Nth request (default 4) is answered "500 Internal Server Error"
    without reaching the upstream;
  - every Mth request (default 11) stalls for S seconds (default 30) and
    the connection is then dropped: the client must time out and retry.
After each injected fault COUNT_FILE holds "<errors> <stalls>".
"""
import http.client
import http.server
import socketserver
import sys
import threading
import time

upstream_port = int(sys.argv[1])
port_file, count_file = sys.argv[2], sys.argv[3]
opts = sys.argv[4:]
every = int(opts[opts.index("--every") + 1]) if "--every" in opts else 4
stall_every = int(opts[opts.index("--stall-every") + 1]) if "--stall-every" in opts else 11
stall_s = float(opts[opts.index("--stall") + 1]) if "--stall" in opts else 30.0

lock = threading.Lock()
state = {"n": 0, "errors": 0, "stalls": 0}


def record(kind):
    with lock:
        state[kind] += 1
        with open(count_file + ".tmp", "w") as f:
            f.write("%d %d\n" % (state["errors"], state["stalls"]))
        import os
        os.replace(count_file + ".tmp", count_file)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        with lock:
            state["n"] += 1
            n = state["n"]
        if stall_every and n % stall_every == 0:
            record("stalls")
            time.sleep(stall_s)
            self.close_connection = True
            return
        if every and n % every == 0:
            record("errors")
            msg = b"injected fault"
            self.send_response(500)
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(msg)
            return
        conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=120)
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in self.headers.items():
            if k.lower() in ("connection", "keep-alive", "transfer-encoding", "expect"):
                continue
            conn.putheader(k, v)
        if body is not None and "Content-Length" not in self.headers:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                continue
            self.send_header(k, v)
        if self.command != "HEAD" or resp.getheader("Content-Length") is None:
            self.send_header("Content-Length", str(len(data)))
        else:
            self.send_header("Content-Length", resp.getheader("Content-Length"))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    def __getattr__(self, name):
        if name.startswith("do_"):
            return self.handle_any
        raise AttributeError(name)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


srv = Server(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write("%d\n" % srv.server_address[1])
import os
os.replace(port_file + ".tmp", port_file)
open(count_file, "w").write("0 0\n")
srv.serve_forever()
