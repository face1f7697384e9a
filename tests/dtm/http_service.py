"""What the test banks share: an HTTP server on 127.0.0.1 in a thread that
hands every request under `/api/busi/<name>` to the bank's `handle(call)` as
a `Call`, and answers with the `(status, body)` it returns."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PREFIX = "/api/busi/"


class Call(object):
    """One request a bank received (`raw`: the body as sent, for replaying)."""

    def __init__(self, method, name, query, body, raw=""):
        self.method = method
        self.name = name
        self.query = query
        self.body = body
        self.raw = raw

    def __repr__(self):
        return "%s %s %s %s" % (self.method, self.name, self.query, self.body)


class HttpService(object):
    """Serves `handle(call)`; a subclass sets its state, then calls
    `HttpService.__init__(self)`."""

    def __init__(self):
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.answer()

            def do_POST(self):
                self.answer()

            def answer(self):
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                name = parts.path[len(PREFIX) :] if parts.path.startswith(PREFIX) else parts.path
                call = Call(self.command, name, query, json.loads(raw) if raw else None, raw)
                status, text = service.handle(call)
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def url(self, name):
        """The URL of branch `name`, e.g. `url("TransOut")`."""
        host, port = self.server.server_address[:2]
        return "http://%s:%d%s%s" % (host, port, PREFIX, name)
