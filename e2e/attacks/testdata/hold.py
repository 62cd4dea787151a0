"""Holds one TLS connection open across a rules change, from inside a
sandbox: the agent that opened a flow while its destination was allowed
and means to go on using it after the operator denied it.

Usage: python3 hold.py HOST ID

Sends "GET /hold-before/ID" on a new connection to HOST:443 and prints
"before: STATUS"; then waits until /tmp/go-ID exists (the test creates
it once the rules changed) and sends "GET /hold-after/ID" on the same
connection, printing "after: STATUS" or "after: ERR <exception name>".
The certificate is not checked: the flow is spliced, so the other end is
the upstream itself.
"""

import http.client
import os
import socket
import ssl
import sys
import time

TIMEOUT = 20  # only stops a broken run from hanging


def get(s, host, path):
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode())
    r = http.client.HTTPResponse(s)
    r.begin()
    r.read()
    return r.status


def wait_for_go(ident):
    """Waits until /tmp/go-IDENT exists; False if it never does."""
    deadline = time.time() + TIMEOUT
    while not os.path.exists("/tmp/go-" + ident):
        if time.time() > deadline:
            return False
        time.sleep(0.02)
    return True


def main():
    host, ident = sys.argv[1], sys.argv[2]
    ctx = ssl._create_unverified_context()
    s = ctx.wrap_socket(socket.create_connection((host, 443), timeout=TIMEOUT), server_hostname=host)
    print("before: %d" % get(s, host, "/hold-before/" + ident), flush=True)
    if not wait_for_go(ident):
        print("after: ERR never told to go on")
        return
    try:
        print("after: %d" % get(s, host, "/hold-after/" + ident))
    except Exception as e:  # the connection was closed under us
        print("after: ERR %s" % type(e).__name__)


if __name__ == "__main__":
    main()
