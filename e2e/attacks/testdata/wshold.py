"""Holds a WebSocket session open across a revocation, from inside a
sandbox: the agent whose session was opened with a credential and means
to go on using it after the operator revoked it.

Usage: python3 wshold.py HOST PATH ENV ID

Upgrades PATH on HOST:443 with "Authorization: Bearer <value of ENV>"
(the certificate checked against the sandbox's bundle), sends the text
message "before" and prints the answer ("echo: ..."), then waits until
/tmp/go-ID exists (the test creates it once the secret is revoked)
and sends "after" on the same session, printing "after: echo: ..." if it
is answered or "after: closed <exception name>" if the session is gone.
Frames are read and written with ws.py's helpers; the wait is hold.py's.
"""

import os
import socket
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hold  # noqa: E402
import ws  # noqa: E402

TIMEOUT = 20  # only stops a broken run from hanging


def main(host, path, env, ident):
    ctx = ssl.create_default_context()
    ctx.set_alpn_protocols(["http/1.1"])
    s = ctx.wrap_socket(socket.create_connection((host, 443), timeout=TIMEOUT), server_hostname=host)
    s.sendall((
        "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Authorization: Bearer %s\r\n\r\n" % (path, host, os.environ[env])
    ).encode())
    c = ws.Conn(s)
    print("handshake " + c.head()[0].split(" ")[1], flush=True)
    s.sendall(ws.masked(1, b"before"))
    print("echo: " + c.frame()[2].decode(), flush=True)
    if not hold.wait_for_go(ident):
        print("after: never told to go on")
        return
    try:
        s.sendall(ws.masked(1, b"after"))
        print("after: echo: " + c.frame()[2].decode())
    except (EOFError, OSError) as e:  # the session was cut under us
        print("after: closed " + type(e).__name__)


main(*sys.argv[1:])
