// relay: the cheapest proxy we could write, to measure what any proxy costs
// on this machine. It answers HTTP CONNECT to a 127.0.0.0/8 address and then
// copies bytes both ways, a blocking thread per direction: no TLS, no HTTP
// parsing after CONNECT, no event loop. The load generator then does TLS
// with the upstream itself, through it.
//
//   cc -O2 -pthread -o relay relay.c && ./relay PORT
//
// Used by bench/relay.sh as a peer of ../shared/bench (docs/BENCHMARKS.md).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct pair {
	int from, to;
	int *left; // pumps of this connection still running; the last closes both sockets
};

static void *pump(void *arg) {
	struct pair *p = arg;
	char buf[64 << 10];
	ssize_t n;
	while ((n = read(p->from, buf, sizeof buf)) > 0) {
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(p->to, buf + off, n - off);
			if (w <= 0)
				goto out;
			off += w;
		}
	}
out:
	shutdown(p->to, SHUT_WR);
	shutdown(p->from, SHUT_RD);
	if (__atomic_sub_fetch(p->left, 1, __ATOMIC_ACQ_REL) == 0) {
		close(p->from);
		close(p->to);
		free(p->left);
	}
	free(p);
	return NULL;
}

static void start(int from, int to, int *left) {
	struct pair *p = malloc(sizeof *p);
	pthread_t t;
	p->from = from;
	p->to = to;
	p->left = left;
	if (pthread_create(&t, NULL, pump, p) != 0)
		abort();
	pthread_detach(t);
}

// serve reads "CONNECT a.b.c.d:port HTTP/1.1 ... \r\n\r\n", dials it (only
// 127.0.0.0/8: this relay never sends a packet off the machine) and starts
// the two pumps, the last of which closes both sockets.
static void *serve(void *arg) {
	int c = (int)(long)arg, one = 1;
	char head[8192], host[64];
	size_t len = 0;
	unsigned port;
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	for (;;) {
		ssize_t n = read(c, head + len, sizeof head - 1 - len);
		if (n <= 0)
			goto fail;
		len += n;
		head[len] = 0;
		if (strstr(head, "\r\n\r\n"))
			break;
		if (len == sizeof head - 1)
			goto fail;
	}
	char *end = strstr(head, "\r\n\r\n") + 4;
	struct sockaddr_in a = {.sin_family = AF_INET};
	if (sscanf(head, "CONNECT %63[0-9.]:%u ", host, &port) != 2 || port > 65535 ||
	    inet_pton(AF_INET, host, &a.sin_addr) != 1 || (ntohl(a.sin_addr.s_addr) >> 24) != 127) {
		dprintf(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
		goto fail;
	}
	a.sin_port = htons(port);
	int u = socket(AF_INET, SOCK_STREAM, 0);
	if (u < 0 || connect(u, (struct sockaddr *)&a, sizeof a) != 0) {
		dprintf(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
		if (u >= 0)
			close(u);
		goto fail;
	}
	setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	dprintf(c, "HTTP/1.1 200 Connection established\r\n\r\n");
	if (end < head + len && write(u, end, head + len - end) < 0) {
		close(u);
		goto fail;
	}
	int *left = malloc(sizeof *left);
	*left = 2;
	start(c, u, left);
	start(u, c, left);
	return NULL;
fail:
	close(c);
	return NULL;
}

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: relay PORT   (listens on 127.0.0.1:PORT)\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN); // a write to a peer that has gone must not end the relay
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1024) != 0) {
		perror("relay: listen");
		return 1;
	}
	for (;;) {
		int c = accept(l, NULL, NULL);
		if (c < 0)
			continue;
		pthread_t t;
		if (pthread_create(&t, NULL, serve, (void *)(long)c) == 0)
			pthread_detach(t);
		else
			close(c);
	}
}
