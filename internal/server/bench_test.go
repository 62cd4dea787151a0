package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/testutil"
)

// Benchmarks of real sandboxes (issue 4): they need root and bin/runsc,
// like the end-to-end tests. Each runs a fixed amount of work whatever b.N
// is and reports percentiles, so run them once:
//
//	go test -run '^$' -bench Sandbox -benchtime 1x ./internal/server/

// benchBodySize is the size of each download and upload.
const benchBodySize = 256 << 20

// Host names the bench upstream answers for: a secret is bound for
// benchSecretHost (the gateway intercepts it), none for benchPlainHost
// (the gateway splices it).
const (
	benchSecretHost = "api.corp.test"
	benchPlainHost  = "bulk.corp.test"
)

// benchRawHost is routed to benchRawServer: plain TCP, no TLS, no HTTP.
const benchRawHost = "raw.corp.test"

// The first byte a bulk client sends: the server answers '<' with
// benchBodySize bytes, and '>' by reading to EOF and writing back the count.
// Neither can start a TLS record or an HTTP method, so the gateway splices
// the connection without waiting for more.
const (
	bulkDown = '<'
	bulkUp   = '>'
)

// benchRawServer serves the bulk protocol above on loopback, reading and
// writing 1 MiB at a time.
func benchRawServer(tb testing.TB) net.Listener {
	tb.Helper()
	return testutil.ServeTCP(tb, func(c net.Conn) {
		cmd := make([]byte, 1)
		if _, err := io.ReadFull(c, cmd); err != nil {
			return
		}
		buf := make([]byte, 1<<20)
		switch cmd[0] {
		case bulkDown:
			for n := 0; n < benchBodySize; n += len(buf) {
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		case bulkUp:
			n, _ := io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, buf)
			fmt.Fprintf(c, "%d", n)
		}
	})
}

// benchUpstream is a fake provider on loopback for both names: GET /big
// sends benchBodySize bytes, PUT /up reads the body and discards it.
func benchUpstream(tb testing.TB) (srv *httptest.Server, caFile string) {
	tb.Helper()
	chunk := make([]byte, 1<<20)
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Header().Set("Content-Length", strconv.Itoa(benchBodySize))
			for n := 0; n < benchBodySize; n += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/up":
			n, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, "%d", n)
		default:
			http.NotFound(w, r)
		}
	}))
	ca, cert := testutil.UpstreamCert(tb, []string{benchSecretHost, benchPlainHost})
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	// The gateway verifies the upstream against this CA.
	return srv, testutil.WriteCA(tb, ca)
}

// benchEnv is a server with runtime gvisor, the explicit proxy on a free
// loopback port, the bench upstream routed for both its names, and the bulk
// server for benchRawHost.
type benchEnv struct {
	c   *client.Client
	cfg Config
	up  *httptest.Server
	raw net.Listener
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	cfg := sandboxConfig(b)
	up, caFile := benchUpstream(b)
	cfg.Gateway.Listen = "127.0.0.1:0"
	addr := up.Listener.Addr().String()
	raw := benchRawServer(b)
	cfg.Gateway.Hosts = map[string]string{benchSecretHost: addr, benchPlainHost: addr, benchRawHost: raw.Addr().String()}
	cfg.Gateway.UpstreamCAFile = caFile
	cfg.Runtime = benchRuntime()
	return &benchEnv{c: startServer(b, cfg), cfg: cfg, up: up, raw: raw}
}

// percentile is the p-th percentile (nearest rank) of sorted ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p/100*float64(len(ds)))) - 1
	return ds[max(i, 0)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// reportPercentiles reports p50 and p95 of ds under prefix and logs them.
func reportPercentiles(b *testing.B, prefix string, ds []time.Duration) {
	b.Helper()
	slices.Sort(ds)
	p50, p95 := percentile(ds, 50), percentile(ds, 95)
	b.ReportMetric(ms(p50), prefix+"p50-ms")
	b.ReportMetric(ms(p95), prefix+"p95-ms")
	b.Logf("%sn=%d p50=%.1fms p95=%.1fms min=%.1fms max=%.1fms", prefix, len(ds), ms(p50), ms(p95), ms(ds[0]), ms(ds[len(ds)-1]))
}

// BenchmarkSandboxLifecycle measures create -> first exec (`true`)
// finished, through the API, for 50 sandboxes one after another, each cold
// (there is no pre-started pool). Delete is timed separately.
func BenchmarkSandboxLifecycle(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	const n = 50
	var starts, deletes []time.Duration
	b.ResetTimer()
	for i := range n {
		name := fmt.Sprintf("life-%d", i)
		t0 := time.Now()
		if _, err := e.c.CreateSandbox(ctx, client.SandboxCreate{Name: name}); err != nil {
			b.Fatalf("CreateSandbox(%q): %v", name, err)
		}
		if got := execIn(b, e.c, name, client.ExecRequest{Args: []string{"true"}}); got.Exit != 0 {
			b.Fatalf("true in %q = %+v", name, got)
		}
		starts = append(starts, time.Since(t0))
		t0 = time.Now()
		if err := e.c.DeleteSandbox(ctx, name); err != nil {
			b.Fatalf("DeleteSandbox(%q): %v", name, err)
		}
		deletes = append(deletes, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, "start-", starts)
	reportPercentiles(b, "delete-", deletes)
}

// BenchmarkSandboxExec measures the round trip of `true` in a running
// sandbox through the API, 100 times.
func BenchmarkSandboxExec(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	if _, err := e.c.CreateSandbox(ctx, client.SandboxCreate{Name: "exec"}); err != nil {
		b.Fatal(err)
	}
	execIn(b, e.c, "exec", client.ExecRequest{Args: []string{"true"}})
	const n = 100
	var ds []time.Duration
	b.ResetTimer()
	for range n {
		t0 := time.Now()
		if got := execIn(b, e.c, "exec", client.ExecRequest{Args: []string{"true"}}); got.Exit != 0 {
			b.Fatalf("true = %+v", got)
		}
		ds = append(ds, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, "exec-", ds)
}

// procMem sums VmRSS (from status) and Pss (from smaps_rollup), in KiB,
// over the host processes whose command line names root.
func procMem(tb testing.TB, root string) (rssKiB, pssKiB, procs int) {
	tb.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range ents {
		dir := filepath.Join("/proc", e.Name())
		cmd, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil || !strings.Contains(string(cmd), root) {
			continue
		}
		rss, err1 := procField(filepath.Join(dir, "status"), "VmRSS:")
		pss, err2 := procField(filepath.Join(dir, "smaps_rollup"), "Pss:")
		if err1 != nil || err2 != nil {
			continue // gone
		}
		rssKiB += rss
		pssKiB += pss
		procs++
	}
	return rssKiB, pssKiB, procs
}

// procField reads the KiB value of the line starting with key.
func procField(path, key string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			fs := strings.Fields(rest)
			if len(fs) > 0 {
				return strconv.Atoi(fs[0])
			}
		}
	}
	return 0, fmt.Errorf("%s: no %q line", path, key)
}

// BenchmarkSandboxMemory measures the memory of idle sandboxes (each ran
// one `true`, then sat 3 s): the runsc processes' RSS and PSS for one
// sandbox alone, then for 10 at once (divided by 10: shared pages count
// once in PSS), and the growth of the server's Go heap (netstack, gateway
// and bookkeeping live in the server process) per sandbox.
func BenchmarkSandboxMemory(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	root := runtimeStateDir(e.cfg.DataDir)
	var ms0 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	create := func(name string) {
		if _, err := e.c.CreateSandbox(ctx, client.SandboxCreate{Name: name,
			Network: client.NetworkRules{AllowOut: []string{benchPlainHost}, DenyOut: []string{"0.0.0.0/0", "::/0"}}}); err != nil {
			b.Fatal(err)
		}
		execIn(b, e.c, name, client.ExecRequest{Args: []string{"true"}})
	}
	create("mem-0")
	time.Sleep(3 * time.Second)
	rss, pss, procs := procMem(b, root)
	b.ReportMetric(float64(rss)/1024, "one-rss-MiB")
	b.ReportMetric(float64(pss)/1024, "one-pss-MiB")
	b.Logf("one idle sandbox: %d runsc processes, RSS %.1f MiB, PSS %.1f MiB", procs, float64(rss)/1024, float64(pss)/1024)
	const n = 10
	for i := 1; i < n; i++ {
		create(fmt.Sprintf("mem-%d", i))
	}
	time.Sleep(3 * time.Second)
	rss, pss, procs = procMem(b, root)
	var ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	heap := (float64(ms1.HeapInuse) - float64(ms0.HeapInuse)) / n / (1 << 20)
	b.ReportMetric(float64(rss)/n/1024, "each-of-10-rss-MiB")
	b.ReportMetric(float64(pss)/n/1024, "each-of-10-pss-MiB")
	b.ReportMetric(heap, "server-heap-MiB/sandbox")
	b.Logf("%d idle sandboxes: %d runsc processes, RSS %.1f MiB, PSS %.1f MiB each; server heap +%.2f MiB each",
		n, procs, float64(rss)/n/1024, float64(pss)/n/1024, heap)
}

// curlStats turns curl's output "<bytes> <seconds>" into MB/s.
func curlStats(b *testing.B, what, out string) float64 {
	b.Helper()
	fs := strings.Fields(out)
	if len(fs) != 2 {
		b.Fatalf("%s: curl -w output %q, want bytes and seconds", what, out)
	}
	n, err1 := strconv.ParseFloat(fs[0], 64)
	secs, err2 := strconv.ParseFloat(fs[1], 64)
	if err1 != nil || err2 != nil || secs <= 0 {
		b.Fatalf("%s: curl -w output %q, want bytes and seconds", what, out)
	}
	if int(n) != benchBodySize {
		b.Fatalf("%s: curl moved %d bytes, want %d", what, int(n), benchBodySize)
	}
	return n / secs / 1e6
}

// BenchmarkSandboxThroughput moves benchBodySize bytes, one connection at a
// time, in each direction over these paths in one run:
//
//   - curl over HTTPS: from the host straight to the upstream (direct), from
//     the host through the explicit proxy (HTTPS_PROXY of the sandbox env
//     endpoint), and from inside a sandbox through TUN + netstack + gateway;
//     each gateway path both for a host with a secret bound (TLS
//     intercepted) and one without (spliced). curl runs with -k: the host
//     curl does not trust the fake CAs, and verification costs nothing
//     measurable next to the transfer.
//   - bulk TCP (bulkClient, Python, no TLS) to benchRawHost: from the host
//     straight, from the host through the explicit proxy (CONNECT), and from
//     inside the sandbox, with 1 MiB reads and writes, which measures the
//     path; and, downloads only, reading like curl reads TLS (a 5-byte record
//     header, then the 16 KiB record, then two writes to /dev/null), which
//     measures what a small-read client sees.
//   - controls inside the sandbox over its own loopback (gVisor's TCP, no
//     TUN, no gateway), downloads only: curl over HTTP and over HTTPS from a
//     Python sender.
func BenchmarkSandboxThroughput(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	if _, err := e.c.CreateSecret(ctx, client.SecretCreate{Name: "corp", Value: "corp-REALVALUE-0123456789abcdef",
		Hosts: []client.HostAuth{{Host: benchSecretHost, Auth: client.AuthSlot{Type: client.SlotBearer}}}}); err != nil {
		b.Fatal(err)
	}
	if _, err := e.c.CreateSandbox(ctx, client.SandboxCreate{Name: "tp", Secrets: map[string]string{"CORP_KEY": "corp"},
		Network: client.NetworkRules{AllowOut: []string{benchSecretHost, benchPlainHost, benchRawHost}, DenyOut: []string{"0.0.0.0/0", "::/0"}}}); err != nil {
		b.Fatal(err)
	}
	env, err := e.c.SandboxEnv(ctx, "tp")
	if err != nil {
		b.Fatal(err)
	}
	proxy := ""
	for _, kv := range env.Env {
		if v, ok := strings.CutPrefix(kv, "HTTPS_PROXY="); ok {
			proxy = v
		}
	}
	if proxy == "" {
		b.Fatal("sandbox env has no HTTPS_PROXY")
	}
	_, upPort, _ := strings.Cut(e.up.Listener.Addr().String(), ":")
	// Through the gateway (sandbox and explicit proxy) benchRawHost reaches
	// the bulk server whatever the port; the host itself cannot resolve the
	// name, so bulk-direct dials the server's address.
	rawTarget := benchRawHost + ":9000"
	rawDirect := e.raw.Addr().String()

	const (
		down = `curl -sS -k -o /dev/null -w '%{size_download} %{time_total}' `
		// The upstream answers with the byte count it read; curl's
		// size_upload would count the chunked framing too.
		up = `head -c ` + "268435456" + ` /dev/zero | curl -sS -k -T - -w ' %{time_total}' `
	)
	if benchBodySize != 268435456 {
		b.Fatal("benchBodySize and the upload command disagree")
	}
	host := func(what, stdin string, args ...string) float64 {
		b.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdin = strings.NewReader(stdin)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("%s: %q: %v, stderr %q", what, args, err, stderr.String())
		}
		return curlStats(b, what, string(out))
	}
	inside := func(what, stdin string, args ...string) float64 {
		b.Helper()
		ectx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		var stdout, stderr strings.Builder
		code, err := e.c.Exec(ectx, "tp", client.ExecRequest{Args: args, Stdin: []byte(stdin)}, &stdout, &stderr)
		if err != nil || code != 0 {
			b.Fatalf("%s: %q = %d, %v, stderr %q", what, args, code, err, stderr.String())
		}
		return curlStats(b, what, stdout.String())
	}
	type row struct {
		name string
		// than names the row a sandbox row is compared with: the same
		// client on the host through the explicit proxy.
		than string
		run  func() float64
	}
	for _, dir := range []struct{ name, cmd, path string }{{"down", down, "/big"}, {"up", up, "/up"}} {
		direct := fmt.Sprintf("--connect-to %s:443:127.0.0.1:%s ", benchPlainHost, upPort)
		rows := []row{
			{"direct", "", func() float64 {
				return host("direct", "", "sh", "-c", dir.cmd+direct+"https://"+benchPlainHost+dir.path)
			}},
			{"proxy-spliced", "", func() float64 {
				return host("proxy spliced", "", "sh", "-c", dir.cmd+"-x '"+proxy+"' https://"+benchPlainHost+dir.path)
			}},
			{"proxy-intercepted", "", func() float64 {
				return host("proxy intercepted", "", "sh", "-c", dir.cmd+"-x '"+proxy+"' https://"+benchSecretHost+dir.path)
			}},
			{"sandbox-spliced", "proxy-spliced", func() float64 {
				return inside("sandbox spliced", "", "sh", "-c", dir.cmd+"https://"+benchPlainHost+dir.path)
			}},
			{"sandbox-intercepted", "proxy-intercepted", func() float64 {
				return inside("sandbox intercepted", "", "sh", "-c", dir.cmd+"https://"+benchSecretHost+dir.path)
			}},
			{"bulk-direct", "", func() float64 {
				return host("bulk direct", bulkClient, "python3", "-", dir.name, rawDirect)
			}},
			{"bulk-proxy", "", func() float64 {
				return host("bulk proxy", bulkClient, "python3", "-", dir.name, rawTarget, proxy)
			}},
			{"bulk-sandbox", "bulk-proxy", func() float64 {
				return inside("bulk sandbox", bulkClient, "python3", "-", dir.name, rawTarget)
			}},
		}
		if dir.name == "down" {
			rows = append(rows,
				row{"bulk-proxy-16k", "", func() float64 {
					return host("bulk proxy 16k", bulkClient, "python3", "-", "down16k", rawTarget, proxy)
				}},
				row{"bulk-sandbox-16k", "bulk-proxy-16k", func() float64 {
					return inside("bulk sandbox 16k", bulkClient, "python3", "-", "down16k", rawTarget)
				}},
				row{"sandbox-loopback-http", "", func() float64 {
					return inside("sandbox loopback http", loopbackSender, "sh", "-c",
						`S=$(cat); rm -f /tmp/sender-ready; python3 -c "$S" & `+
							`while [ ! -e /tmp/sender-ready ]; do sleep 0.1; done; `+down+"http://127.0.0.1:8080/big")
				}},
				row{"sandbox-loopback-https", "", func() float64 {
					return inside("sandbox loopback https", loopbackSender, "sh", "-c",
						`cd /tmp && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -out cert.pem -subj /CN=localhost -days 1 2>/dev/null && `+
							`S=$(cat); rm -f /tmp/sender-ready; python3 -c "$S" tls & `+
							`while [ ! -e /tmp/sender-ready ]; do sleep 0.1; done; `+down+"https://127.0.0.1:8443/big")
				}},
			)
		}
		// Host rows appear in the metrics and as the base of a sandbox
		// row's line: the test framework keeps only 10 lines of log.
		got := map[string]float64{}
		for _, r := range rows {
			mbs := r.run()
			got[r.name] = mbs
			b.ReportMetric(mbs, dir.name+"-"+r.name+"-MB/s")
			switch {
			case r.than != "":
				b.ReportMetric(mbs/got[r.than], dir.name+"-"+r.name+"-x-"+r.than)
				b.Logf("%s %-22s %6.1f MB/s = %.2fx %s (%.1f MB/s)", dir.name, r.name, mbs, mbs/got[r.than], r.than, got[r.than])
			case strings.HasPrefix(r.name, "sandbox-"):
				b.Logf("%s %-22s %6.1f MB/s = %.2fx direct (%.1f MB/s)", dir.name, r.name, mbs, mbs/got["direct"], got["direct"])
			}
		}
	}
}

// bulkClient is a Python client for benchRawServer, run as
// `python3 - MODE HOST:PORT [PROXY]` with this on stdin. MODE is "down",
// "up" or "down16k" (a download read the way curl reads TLS: the 5-byte
// record header, then a 16 KiB record, then two writes to /dev/null, each
// a system call). With PROXY (an http:// URL with user and password) it
// tunnels through CONNECT. It prints the bytes moved and the seconds taken,
// connecting included, as curl's -w does.
const bulkClient = `import base64, os, socket, sys, time, urllib.parse
mode, target = sys.argv[1], sys.argv[2]
size = ` + "268435456" + `
t0 = time.time()
if len(sys.argv) > 3:
    u = urllib.parse.urlsplit(sys.argv[3])
    s = socket.create_connection((u.hostname, u.port))
    auth = base64.b64encode((urllib.parse.unquote(u.username) + ':' + urllib.parse.unquote(u.password)).encode()).decode()
    s.sendall(('CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n' % (target, target, auth)).encode())
    resp = b''
    while not resp.endswith(b'\r\n\r\n'):
        c = s.recv(1)  # a byte at a time: nothing past the response is consumed
        if not c:
            sys.exit('proxy closed the connection')
        resp += c
    if resp.split()[1] != b'200':
        sys.exit('CONNECT: %r' % resp)
else:
    host, port = target.rsplit(':', 1)
    s = socket.create_connection((host, int(port)))
n = 0
buf = bytearray(1 << 20)
if mode == 'down':
    s.sendall(b'<')
    while True:
        k = s.recv_into(buf)
        if not k:
            break
        n += k
elif mode == 'down16k':
    null = os.open('/dev/null', os.O_WRONLY)
    mv = memoryview(buf)
    s.sendall(b'<')
    while True:
        k = s.recv_into(mv[:5])
        if not k:
            break
        k2 = s.recv_into(mv[:16401])
        n += k + k2
        os.write(null, mv[:4096])
        os.write(null, mv[4096:max(k2, 4096)])
else:
    s.sendall(b'>')
    for _ in range(size // len(buf)):
        s.sendall(buf)
    s.shutdown(socket.SHUT_WR)
    n = int(s.recv(64))
print(n, time.time() - t0)
`

// loopbackSender, run as `python3 -c`, answers one HTTP
// request on 127.0.0.1:8080 with benchBodySize zero bytes; with the argument
// "tls", on 127.0.0.1:8443 over TLS with cert.pem and key.pem of the working
// directory. It creates /tmp/sender-ready once it listens.
const loopbackSender = `import socket, ssl, sys
tls = sys.argv[1:] == ['tls']
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 8443 if tls else 8080))
s.listen()
open('/tmp/sender-ready', 'w').close()
c, _ = s.accept()
if tls:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain('cert.pem', 'key.pem')
    c = ctx.wrap_socket(c, server_side=True)
c.recv(65536)
c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: ` + "268435456" + `\r\nConnection: close\r\n\r\n')
b = bytes(1 << 20)
for _ in range(256):
    c.sendall(b)
c.close()`
