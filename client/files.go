package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// rawRequest sends a request whose body (if non-nil) is raw bytes and
// returns the response if its status is below 300; otherwise the error.
func (c *Client) rawRequest(ctx context.Context, op, method, target string, body io.Reader, size int64) (*http.Response, error) {
	if c.err != nil {
		return nil, c.err
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+target, body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, stripURL(err))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
		if size >= 0 {
			req.ContentLength = size
		}
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, stripURL(err))
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		if err != nil {
			return nil, fmt.Errorf("%s: read response: %w", op, err)
		}
		return nil, responseError(resp.StatusCode, data)
	}
	return resp, nil
}

func filesPath(sandbox, path string) string {
	return "/v1/sandboxes/" + seg(sandbox) + "/files?" + url.Values{"path": {path}}.Encode()
}

// PutFile writes the file at path (absolute) in a running sandbox with the
// contents of r, at most 64 MiB; size is r's length, or -1 if unknown. The
// file is created or truncated.
func (c *Client) PutFile(ctx context.Context, sandbox, path string, r io.Reader, size int64) error {
	if r == nil {
		r = http.NoBody
	}
	resp, err := c.rawRequest(ctx, "put file", http.MethodPut, filesPath(sandbox, path), r, size)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// GetFile copies the file at path (absolute) in a running sandbox to w and
// returns its size. A read that fails midway is an error.
func (c *Client) GetFile(ctx context.Context, sandbox, path string, w io.Writer) (int64, error) {
	resp, err := c.rawRequest(ctx, "get file", http.MethodGet, filesPath(sandbox, path), nil, -1)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("get file: %w", stripURL(err))
	}
	return n, nil
}
