"""The one fake HTTP server of the dataprep tests: serves bytes from memory on 127.0.0.1, with
optional basic auth, `Range: bytes=N-` resumption, a Content-Type per path, and faults to inject (a
connection dropped half-way, corrupted bytes, an HTTP error, a redirect, something happening between
the headers and the body), and records every request it gets."""

import base64
import http.server
import threading


class FakeServer:
    """`served` maps URL paths ("/dir/name") to the bytes to send; tests may change it, and the
    fault tables below, while the server runs. With `credentials` (user, password), every path not
    under `public_prefix` answers 401 unless the request carries them."""

    def __init__(self, served=None, credentials=None, public_prefix=None):
        self.served = dict(served or {})
        self.requests = []          # (path, Range header, Authorization header)
        self.drop_after = {}        # path -> bytes to send before hanging up (once)
        self.corrupt_once = set()
        self.fail_once = {}         # path -> HTTP status to answer once
        self.redirects = {}         # path -> absolute URL (any text: it is sent as the Location)
        self.before_body = {}       # path -> function to call (once) after the headers, before the body
        self.content_types = {}     # path -> Content-Type header to send with it (none by default)
        self.expected_auth = None
        if credentials is not None:
            self.expected_auth = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
        self.public_prefix = public_prefix
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def part_requests(self, name):
        return [request for request in self.requests if request[0].endswith("/" + name)]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def _needs_auth(self, path):
        public = self.public_prefix is not None and path.startswith(self.public_prefix)
        return self.expected_auth is not None and not public

    def _handler_class(self):
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path
                fake.requests.append((path, self.headers.get("Range"), self.headers.get("Authorization")))
                if path in fake.redirects:
                    return self._reply(302, b"", {"Location": fake.redirects[path]})
                if fake._needs_auth(path) and self.headers.get("Authorization") != fake.expected_auth:
                    return self._reply(401, b"login required", {"WWW-Authenticate": 'Basic realm="vox"'})
                if path in fake.fail_once:
                    return self._reply(fake.fail_once.pop(path), b"try again later")
                if path not in fake.served:
                    return self._reply(404, b"not found")
                data = fake.served[path]
                if path in fake.corrupt_once:
                    fake.corrupt_once.discard(path)
                    data = data[:10] + bytes(b ^ 0xFF for b in data[10:20]) + data[20:]
                start = self._range_start()
                if start is not None and start >= len(data):
                    return self._reply(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                status, headers = 200, {}
                if start is not None:
                    status, headers = 206, {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
                    data = data[start:]
                if path in fake.content_types:
                    headers["Content-Type"] = fake.content_types[path]
                if path in fake.drop_after:
                    return self._hang_up_after(fake.drop_after.pop(path), status, data, headers)
                if path in fake.before_body:
                    self._send_head(status, headers, len(data))
                    self.wfile.flush()
                    fake.before_body.pop(path)()
                    return self.wfile.write(data)
                self._reply(status, data, headers)

            def _range_start(self):
                header = self.headers.get("Range")
                if header and header.startswith("bytes=") and header.endswith("-"):
                    return int(header[len("bytes="):-1])
                return None

            def _reply(self, status, body, headers=None):
                self._send_head(status, headers, len(body))
                self.wfile.write(body)

            def _hang_up_after(self, n_bytes, status, data, headers):
                self._send_head(status, headers, len(data))
                self.wfile.write(data[:n_bytes])
                self.wfile.flush()
                self.close_connection = True

            def _send_head(self, status, headers, length):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(length))
                self.end_headers()

        return Handler
