"""Network probes the hostile-agent suite runs inside a sandbox.

Usage: python3 net.py PROBE... where each PROBE is one argument holding a
command and its words separated by spaces (a payload spells a space \x20).
Each probe prints one line, "<probe>: <outcome>", where the outcome is
"OK ..." or "ERR <errno name>" (or a DNS rcode), for the test to match.
It never connects an AF_VSOCK socket: the vsock probe only creates one.

Commands:
  socket FAMILY TYPE PROTO        create a socket (names from the socket module)
  connect HOST PORT [PAYLOAD]     TCP connect, send PAYLOAD, print the reply
  connect6 HOST PORT              IPv6 TCP connect
  unix PATH                       connect a unix stream socket
  dns NAME TYPE udp|tcp           query the sandbox's resolver, print rcode
  udp HOST PORT                   send a DNS query for NAME there; see below
  icmp HOST                       ICMP echo through a datagram socket; see below

udp and icmp send, then wait for a DNS answer from the sandbox's resolver,
which comes back through the same TUN device after the probe's packet went
in: anything answering the probe synchronously (the daemon's stack replying
or refusing) has answered by then. The probe socket is then read without
waiting: "no reply" means nothing came back.

A HOST of RESOLVER stands for the resolver's address (the sandbox's
gateway, from /etc/resolv.conf).
"""

import errno
import os
import socket
import struct
import sys

TIMEOUT = 20  # only stops a broken run from hanging


def ename(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    if isinstance(e, socket.gaierror):
        return "gaierror %d" % e.errno
    return errno.errorcode.get(e.errno, str(e.errno))


def resolver():
    with open("/etc/resolv.conf") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                return parts[1]
    raise SystemExit("no nameserver in /etc/resolv.conf")


QTYPES = {"A": 1, "AAAA": 28, "TXT": 16, "ANY": 255}


def query(name, qtype, qid=0x5151):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", QTYPES[qtype], 1)


def parse(resp):
    qid, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", resp[:12])
    return flags & 0xF, an


def dns(name, qtype, proto):
    q = query(name, qtype)
    if proto == "tcp":
        s = socket.create_connection((resolver(), 53), timeout=TIMEOUT)
        s.sendall(struct.pack(">H", len(q)) + q)
        n = struct.unpack(">H", recv_exact(s, 2))[0]
        resp = recv_exact(s, n)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(TIMEOUT)
        s.sendto(q, (resolver(), 53))
        resp = s.recv(4096)
    s.close()
    return parse(resp)


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise OSError(errno.ECONNRESET, "short read")
        b += chunk
    return b


def barrier_then_read(s):
    """Waits for the resolver's answer, then reads s without blocking."""
    dns("barrier.invalid", "A", "udp")
    s.setblocking(False)
    try:
        data = s.recv(4096)
        return "reply %d bytes" % len(data)
    except BlockingIOError:
        return "no reply"
    except OSError as e:
        return "ERR " + ename(e)


def main(argv):
    cmd, args = argv[0], [resolver() if a == "RESOLVER" else a for a in argv[1:]]
    label = " ".join(argv)
    try:
        if cmd == "socket":
            fam, typ, proto = (getattr(socket, a) if not a.isdigit() else int(a) for a in args)
            socket.socket(fam, typ, proto).close()
            out = "OK created"
        elif cmd in ("connect", "connect6"):
            fam = socket.AF_INET6 if cmd == "connect6" else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(TIMEOUT)
            s.connect((args[0], int(args[1])))
            if len(args) > 2:
                s.sendall(args[2].encode().decode("unicode_escape").encode("latin-1"))
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            out = "OK connected, reply %r" % data
        elif cmd == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(args[0])
            out = "OK connected"
        elif cmd == "dns":
            rcode, an = dns(args[0], args[1], args[2])
            out = "rcode=%d answers=%d" % (rcode, an)
        elif cmd == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect((args[0], int(args[1])))
            s.send(query(args[2], "A"))
            out = "sent, " + barrier_then_read(s)
        elif cmd == "icmp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
            s.connect((args[0], 0))
            s.send(struct.pack(">BBHHH", 8, 0, 0, 0x5151, 1) + b"standin-e2e")
            out = "sent, " + barrier_then_read(s)
        else:
            raise SystemExit("unknown command %r" % cmd)
    except OSError as e:
        out = "ERR " + ename(e)
    print("%s: %s" % (label, out), flush=True)


if __name__ == "__main__":
    for probe in sys.argv[1:]:
        main(probe.split())
