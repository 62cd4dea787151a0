package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// maxExecLine bounds one line of an exec stream (a chunk of output is at
// most 32 KiB before base64).
const maxExecLine = 1 << 20

// Exec runs a command in a running sandbox and streams its output to stdout
// and stderr (either may be nil to discard) as it arrives. It returns the
// command's exit status; err is non-nil only if the command could not be
// run or the stream broke. A sandbox that is not running is an *APIError
// with status 409.
func (c *Client) Exec(ctx context.Context, sandbox string, req ExecRequest, stdout, stderr io.Writer) (exitCode int, err error) {
	const op = "exec"
	if c.err != nil {
		return 0, c.err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return 0, fmt.Errorf("%s: encode request: %w", op, err)
	}
	return c.postExec(ctx, op, sandbox, "application/json", bytes.NewReader(body), stdout, stderr)
}

// postExec sends an exec request body of contentType and reads the event
// stream it answers with.
func (c *Client) postExec(ctx context.Context, op, sandbox, contentType string, body io.Reader, stdout, stderr io.Writer) (int, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+"/v1/sandboxes/"+seg(sandbox)+"/exec", body)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, stripURL(err))
	}
	hr.Header.Set("Content-Type", contentType)
	hr.Header.Set("Accept", "application/x-ndjson")
	if c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, stripURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		if err != nil {
			return 0, fmt.Errorf("%s: read response: %w", op, err)
		}
		return 0, responseError(resp.StatusCode, data)
	}
	return readEvents(op, resp, stdout, stderr)
}

// readEvents reads an exec's event stream to its last event.
func readEvents(op string, resp *http.Response, stdout, stderr io.Writer) (int, error) {
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxExecLine)
	for sc.Scan() {
		var ev ExecEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return 0, fmt.Errorf("%s: decode event: %w", op, err)
		}
		switch {
		case ev.Error != nil:
			return 0, &APIError{Status: resp.StatusCode, Code: ev.Error.Code, Message: ev.Error.Message}
		case ev.ExitCode != nil:
			return *ev.ExitCode, nil
		case ev.Stream == "stdout" && stdout != nil:
			if _, err := stdout.Write(ev.Data); err != nil {
				return 0, fmt.Errorf("%s: write stdout: %w", op, err)
			}
		case ev.Stream == "stderr" && stderr != nil:
			if _, err := stderr.Write(ev.Data); err != nil {
				return 0, fmt.Errorf("%s: write stderr: %w", op, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%s: read stream: %w", op, stripURL(err))
	}
	return 0, errors.New(op + ": stream ended without an exit status")
}

// ExecInteractive is Exec with a standard input read as the command runs:
// what stdin yields is sent at once (the connection is full duplex), and
// its end closes the command's input. With req.TTY the command runs on a
// pseudo-terminal and all its output arrives on stdout. req.Stdin, if set,
// is sent first.
func (c *Client) ExecInteractive(ctx context.Context, sandbox string, req ExecRequest, stdin io.Reader, stdout, stderr io.Writer, opts ...ExecOption) (exitCode int, err error) {
	const op = "exec"
	if c.err != nil {
		return 0, c.err
	}
	first, err := json.Marshal(req)
	if err != nil {
		return 0, fmt.Errorf("%s: encode request: %w", op, err)
	}
	var o execOptions
	for _, opt := range opts {
		opt(&o)
	}
	pr, pw := io.Pipe()
	// Closing the body ends the input pump if the command exits first.
	defer pr.Close()
	lw := &lineWriter{w: pw}
	started := make(chan struct{}) // the request line is out
	go func() {
		err := lw.write(first)
		close(started)
		if err != nil {
			return
		}
		pw.CloseWithError(pumpInput(stdin, lw))
	}()
	if o.resize != nil {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			<-started
			for {
				select {
				case <-stop:
					return
				case ws, ok := <-o.resize:
					if !ok {
						return
					}
					line, _ := json.Marshal(ExecInput{Resize: &ws})
					if lw.write(line) != nil {
						return
					}
				}
			}
		}()
	}
	return c.postExec(ctx, op, sandbox, "application/x-ndjson", pr, stdout, stderr)
}

// ExecOption changes how ExecInteractive runs a command.
type ExecOption func(*execOptions)

type execOptions struct {
	resize <-chan WindowSize
}

// WithResize sends every size received from ch as the command's new
// terminal size, while it runs (with ExecRequest.TTY).
func WithResize(ch <-chan WindowSize) ExecOption {
	return func(o *execOptions) { o.resize = ch }
}

// lineWriter writes whole lines from several goroutines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) write(line []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.w.Write(append(line, '\n'))
	return err
}

// pumpInput sends what r yields as ExecInput lines, then an EOF line.
func pumpInput(r io.Reader, w *lineWriter) error {
	send := func(in ExecInput) error {
		line, err := json.Marshal(in)
		if err != nil {
			return err
		}
		return w.write(line)
	}
	if r != nil {
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				if werr := send(ExecInput{Stdin: buf[:n]}); werr != nil {
					return werr
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("read stdin: %w", err)
			}
		}
	}
	return send(ExecInput{EOF: true})
}
