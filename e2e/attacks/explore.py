import socket, errno, os
def tryit(name, f):
    try:
        r = f()
        print(name, "OK", r)
    except OSError as e:
        print(name, "ERR", errno.errorcode.get(e.errno), e)
tryit("vsock", lambda: socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM).close())
tryit("vsock-dgram", lambda: socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM).close())
tryit("netlink-route", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close())
tryit("netlink-netfilter", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12).close())
tryit("netlink-uevent", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 15).close())
tryit("raw-icmp", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close())
tryit("dgram-icmp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP).close())
tryit("packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close())
tryit("inet6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close())
def c6(addr):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s.settimeout(5); s.connect((addr, 443))
tryit("connect6-doc", lambda: c6("2001:db8::1"))
tryit("connect6-mapped", lambda: c6("::ffff:192.0.2.1"))
def c4(addr, port):
    s = socket.socket(); s.settimeout(5); s.connect((addr, port)); s.send(b"GET / HTTP/1.0\r\n\r\n"); return s.recv(100)
tryit("connect-192.0.2.1", lambda: c4("192.0.2.1", 80))
tryit("connect-lo-api", lambda: c4("127.0.0.1", int(os.environ.get("APIPORT","1"))))
tryit("connect-gw-53tcp", lambda: c4("100.96.0.1", 81))
tryit("unix-api", lambda: socket.socket(socket.AF_UNIX).connect(os.environ.get("SOCK","/x")))
def icmpdg():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    s.connect(("192.0.2.1",0)); s.send(b"\x08\x00\x00\x00\x00\x01\x00\x01hello"); s.settimeout(2); return s.recv(100)
tryit("icmp-dgram-send", icmpdg)
for f in ["/proc/self/environ", "/proc/1/environ"]:
    tryit(f, lambda: open(f,"rb").read())
