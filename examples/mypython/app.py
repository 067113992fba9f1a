"""Serves a greeting over HTTP on port 80, the name taken from $NAME."""
import os
import socket
from http.server import BaseHTTPRequestHandler, HTTPServer


class Greeter(BaseHTTPRequestHandler):
    def do_GET(self):
        body = "<h3>Hello {}!</h3><b>Hostname:</b> {}<br/>\n".format(
            os.getenv("NAME", "world"), socket.gethostname()
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    HTTPServer(("", int(os.getenv("PORT", "80"))), Greeter).serve_forever()
