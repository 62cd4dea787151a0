"""A WebSocket client from inside a sandbox, standard library only: it reads
messages the way a client library does, joining a message's fragments.

Usage: python3 ws.py HOST PATH ENV

It connects over TLS to HOST:443 (the certificate checked against the
sandbox's bundle, SSL_CERT_FILE, which holds standin's CA), asks for an
upgrade of PATH with "Authorization: Bearer <value of ENV>", and prints:

  handshake <status> accept=ok|bad     the 101 and its Sec-WebSocket-Accept
  message <opcode> <fragments> <json>  each message, its fragments joined
  close <code>                         the server's close, answered
  ERR <reason>                         anything else, then it stops

Frames from the server are read as RFC 6455 section 5 says (a masked one
is unmasked, as lenient clients do); the client's close is masked.
"""

import base64
import errno
import hashlib
import json
import os
import socket
import ssl
import struct
import sys

TIMEOUT = 20  # only stops a broken run from hanging
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def read(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            self.fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head.decode("latin-1").split("\r\n")

    def frame(self):
        b0, b1 = self.read(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack(">H", self.read(2))
        elif n == 127:
            (n,) = struct.unpack(">Q", self.read(8))
        key = self.read(4) if b1 & 0x80 else None
        payload = self.read(n)
        if key:
            payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        return bool(b0 & 0x80), b0 & 0x0F, payload


def masked(opcode, payload):
    key = os.urandom(4)
    body = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + body


def run(host, path, env, out):
    ctx = ssl.create_default_context()
    ctx.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection((host, 443), timeout=TIMEOUT)
    s = ctx.wrap_socket(raw, server_hostname=host)
    key = base64.b64encode(os.urandom(16))
    req = (
        "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
        "Authorization: Bearer %s\r\n\r\n" % (path, host, key.decode(), os.environ[env])
    )
    s.sendall(req.encode())
    c = Conn(s)
    lines = c.head()
    status = lines[0].split(" ")[1]
    accept = ""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-accept":
            accept = value.strip()
    want = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
    out.write("handshake %s accept=%s\n" % (status, "ok" if accept == want else "bad"))
    if status != "101":
        return
    opcode, parts = None, []
    while True:
        fin, op, payload = c.frame()
        if op == 8:
            code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
            out.write("close %d\n" % code)
            s.sendall(masked(8, payload[:2]))
            s.close()
            return
        if op in (9, 10):
            continue  # ping, pong: no message
        if op == 0:
            if opcode is None:
                out.write("ERR continuation without a message\n")
                return
        elif opcode is not None:
            out.write("ERR new message inside a fragmented one\n")
            return
        else:
            opcode = op
        parts.append(payload)
        if fin:
            text = b"".join(parts).decode("utf-8", "backslashreplace")
            out.write("message %d %d %s\n" % (opcode, len(parts), json.dumps(text)))
            opcode, parts = None, []


def main(host, path, env):
    out = sys.stdout
    try:
        run(host, path, env, out)
    except ssl.SSLError as e:
        out.write("ERR ssl %s\n" % (e.reason or e))
    except EOFError as e:
        out.write("ERR %s\n" % e)
    except OSError as e:
        out.write("ERR %s\n" % errno.errorcode.get(e.errno, str(e)))
    out.flush()


if __name__ == "__main__":
    main(*sys.argv[1:])
