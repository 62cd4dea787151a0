"""Sends raw bytes over TLS from inside a sandbox and prints every byte the
other side sends back until it closes the connection.

Usage: python3 raw.py HOST PORT SNI verify|insecure REQUEST_B64...

Each request (base64-encoded) goes on a connection of its own, as one
write: pipelined and smuggled requests arrive together, as an attacker
would send them. After what came back on a connection, raw.py prints the
line "@@raw-end". The TLS server name is SNI (the gateway compares it with
the destination); the certificate is checked against the sandbox's bundle
(SSL_CERT_FILE, which holds standin's CA) unless "insecure" is given.
Errors are printed as "ERR <errno name or ssl reason>".
"""

import base64
import errno
import socket
import ssl
import sys

TIMEOUT = 20  # only stops a broken run from hanging


def exchange(ctx, host, port, sni, req, out):
    try:
        raw = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        s = ctx.wrap_socket(raw, server_hostname=sni)
        s.sendall(req)
        while True:
            try:
                chunk = s.recv(65536)
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break  # closed, with or without close_notify
            if not chunk:
                break
            out.write(chunk)
    except ssl.SSLError as e:
        out.write(("ERR ssl %s\n" % (e.reason or e)).encode())
    except OSError as e:
        out.write(("ERR %s\n" % errno.errorcode.get(e.errno, str(e))).encode())
    out.write(b"@@raw-end\n")
    out.flush()


def main(host, port, sni, mode, *reqs):
    ctx = ssl.create_default_context()
    if mode == "insecure":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    for r in reqs:
        exchange(ctx, host, port, sni, base64.b64decode(r), sys.stdout.buffer)


if __name__ == "__main__":
    main(*sys.argv[1:])
