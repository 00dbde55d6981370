#!/usr/bin/env python3
"""A webhook receiver for the tests: listens on 127.0.0.1 (a free port,
written to PORTFILE once listening), appends each POST body as one line to
OUTFILE with its Content-Type, and answers with STATUS (default 200).

usage: http_sink.py PORTFILE OUTFILE [STATUS]
"""
import http.server
import json
import sys

portfile, outfile = sys.argv[1], sys.argv[2]
status = int(sys.argv[3]) if len(sys.argv) > 3 else 200


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        with open(outfile, "a") as f:
            f.write(json.dumps({"path": self.path,
                                "content_type": self.headers.get("Content-Type"),
                                "body": body.decode("utf-8", "replace")}) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
