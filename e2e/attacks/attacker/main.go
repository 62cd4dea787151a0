// Command attacker is the part of the hostile-agent suite (e2e/attacks)
// that needs more control than curl or python3 give: HTTP/2 frames written
// one by one, and a stream held open on one HTTP/2 connection while another
// request goes out on it. The suite builds it statically (CGO_ENABLED=0)
// and copies it into a sandbox with `standin cp`.
//
// It prints what it saw as "key: value" lines for the test to match, and
// never exits non-zero for a refusal: the refusal is the result.
//
//	attacker h2 -addr HOST:PORT -sni NAME -authority NAME [-header 'k: v']... [-path /p]
//	attacker stream -url https://host/sse/x -after https://host/after -env VAR [-h1]
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// deadline only stops a broken run from hanging; nothing is timed.
const deadline = 60 * time.Second

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: attacker h2|stream [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "h2":
		err = h2(os.Args[2:])
	case "stream":
		err = stream(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
}

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

// h2 opens TLS to addr with SNI sni (ALPN h2 only, verified against the
// system bundle, which holds standin's CA), writes one HEADERS frame with
// the given :authority and extra header fields, and prints the response's
// :status, its header fields and its body.
func h2(args []string) error {
	fs := flag.NewFlagSet("h2", flag.ExitOnError)
	addr := fs.String("addr", "", "host:port to connect to")
	sni := fs.String("sni", "", "TLS server name")
	authority := fs.String("authority", "", ":authority pseudo-header")
	path := fs.String("path", "/", ":path pseudo-header")
	var extra headerList
	fs.Var(&extra, "header", "extra header field 'name: value' (repeatable; $VAR expanded)")
	fs.Parse(args)

	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: deadline}, "tcp", *addr,
		&tls.Config{ServerName: *sni, NextProtos: []string{"h2"}})
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(deadline))
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		return fmt.Errorf("ALPN chose %q, want h2", p)
	}
	fmt.Println("alpn: h2")
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		return err
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		return err
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	fields := []hpack.HeaderField{
		{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: *authority}, {Name: ":path", Value: *path},
	}
	for _, h := range extra {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return fmt.Errorf("header %q: want 'name: value'", h)
		}
		fields = append(fields, hpack.HeaderField{Name: strings.ToLower(strings.TrimSpace(k)), Value: os.ExpandEnv(strings.TrimSpace(v))})
	}
	for _, f := range fields {
		enc.WriteField(f)
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		return err
	}
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		fmt.Printf("header: %s: %s\n", f.Name, f.Value)
	})
	var body bytes.Buffer
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return fmt.Errorf("read frame: %w", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			if f.StreamID != 1 {
				continue
			}
			if _, err := dec.Write(f.HeaderBlockFragment()); err != nil {
				return err
			}
			if f.StreamEnded() {
				fmt.Printf("body: %s\n", body.Bytes())
				return nil
			}
		case *http2.DataFrame:
			if f.StreamID != 1 {
				continue
			}
			body.Write(f.Data())
			if f.StreamEnded() {
				fmt.Printf("body: %s\n", body.Bytes())
				return nil
			}
		case *http2.RSTStreamFrame:
			fmt.Printf("rst_stream: %v\n", f.ErrCode)
			return nil
		case *http2.GoAwayFrame:
			fmt.Printf("goaway: %v\n", f.ErrCode)
			return nil
		}
	}
}

// stream opens an event stream at -url with the stand-in from $-env as a
// bearer token and prints its events until the stream ends, and how it
// ended ("stream-cut" on an error, "stream-end" on a clean end,
// "stream-timeout" if the client's own deadline ended it). Then it
// sends a request to -after with the same client (over HTTP/2 on the same
// connection if it is still open) and one with a new client, and prints
// how each was answered. The test revokes the stand-in while the stream
// is open.
func stream(args []string) error {
	fs := flag.NewFlagSet("stream", flag.ExitOnError)
	streamURL := fs.String("url", "", "event stream URL")
	after := fs.String("after", "", "URL requested once the stream has ended")
	env := fs.String("env", "", "variable holding the stand-in")
	h1 := fs.Bool("h1", false, "HTTP/1.1 instead of HTTP/2")
	fs.Parse(args)
	token := os.Getenv(*env)
	if token == "" {
		return fmt.Errorf("$%s is empty", *env)
	}
	newClient := func() *http.Client {
		tr := &http.Transport{ForceAttemptHTTP2: !*h1}
		if *h1 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		return &http.Client{Transport: tr, Timeout: deadline}
	}
	get := func(c *http.Client, u string) (*http.Response, *bool, error) {
		reused := new(bool)
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(ci httptrace.GotConnInfo) { *reused = ci.Reused },
		}))
		resp, err := c.Do(req)
		return resp, reused, err
	}
	report := func(what string, c *http.Client) error {
		resp, reused, err := get(c, *after)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s: reused=%v status=%d proto=%s error=%s body=%s\n", what, *reused, resp.StatusCode, resp.Proto,
			resp.Header.Get("X-Standin-Error"), bytes.TrimSpace(body))
		return nil
	}

	c := newClient()
	resp, _, err := get(c, *streamURL)
	if err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	fmt.Printf("stream: status=%d proto=%s\n", resp.StatusCode, resp.Proto)
	br := bufio.NewReader(resp.Body)
	events := 0
	for {
		line, err := br.ReadString('\n')
		if strings.HasPrefix(line, "data: ") {
			events++
			fmt.Printf("event: %s", line)
		}
		if errors.Is(err, io.EOF) {
			fmt.Printf("stream-end: after %d events\n", events)
			break
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// Our own deadline: nothing cut the stream.
			fmt.Printf("stream-timeout: after %d events\n", events)
			break
		}
		if err != nil {
			fmt.Printf("stream-cut: after %d events\n", events)
			break
		}
	}
	resp.Body.Close()
	if err := report("same-client", c); err != nil {
		return err
	}
	return report("new-conn", newClient())
}
