// Command goclient calls providers' APIs the way a Go program using
// net/http does, with the keys from the environment. The e2e clients suite
// builds it statically and copies it into a sandbox.
//
// Usage: goclient PROVIDER...
//
// It prints a JSON object: provider -> {call -> the answer's key field}, or
// {"error": message} for a provider whose calls failed (then it exits 1).
// The calls and fields are the same for every client of the suite (see
// clients_test.go).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

const prompt = "ping"

var httpClient = &http.Client{Timeout: time.Minute}

func main() {
	providers := map[string]func() (map[string]string, error){
		"openai": openai, "anthropic": anthropic, "github": github, "slack": slack, "stripe": stripe,
	}
	names := os.Args[1:]
	for _, n := range names {
		if providers[n] == nil {
			names = nil
		}
	}
	if len(names) == 0 {
		fmt.Fprintln(os.Stderr, "usage: goclient openai|anthropic|github|slack|stripe...")
		os.Exit(2)
	}
	result, code := map[string]map[string]string{}, 0
	for _, n := range names {
		out, err := providers[n]()
		if err != nil {
			out, code = map[string]string{"error": err.Error()}, 1
		}
		result[n] = out
	}
	json.NewEncoder(os.Stdout).Encode(result)
	os.Exit(code)
}

// do sends a request and fails on any status but 2xx.
func do(method, u string, header http.Header, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return nil, fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, b)
	}
	return resp, nil
}

// call sends a request with payload as JSON (none if nil) and decodes the
// JSON answer into out.
func call(method, u string, header http.Header, payload, out any) error {
	var body io.Reader
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
		header = header.Clone()
		header.Set("Content-Type", "application/json")
	}
	resp, err := do(method, u, header, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

type sseEvent struct{ name, data string }

// stream posts payload as JSON and calls fn with each server-sent event as
// it arrives, until the stream ends or fn returns false.
func stream(u string, header http.Header, payload any, fn func(sseEvent) (more bool, err error)) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	header = header.Clone()
	header.Set("Content-Type", "application/json")
	header.Set("Accept", "text/event-stream")
	resp, err := do("POST", u, header, bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var ev sseEvent
	var data []string
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		switch {
		case line == "":
			if len(data) > 0 {
				ev.data = strings.Join(data, "\n")
				if more, err := fn(ev); err != nil || !more {
					return err
				}
			}
			ev, data = sseEvent{}, nil
		case strings.HasPrefix(line, "event:"):
			ev.name = strings.TrimSpace(line[len("event:"):])
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(line[len("data:"):], " "))
		}
	}
	return sc.Err()
}

func openai() (map[string]string, error) {
	const base = "https://api.openai.com/v1"
	auth := http.Header{"Authorization": {"Bearer " + os.Getenv("OPENAI_API_KEY")}}
	out := map[string]string{}

	var models struct{ Data []struct{ ID string } }
	if err := call("GET", base+"/models", auth, nil, &models); err != nil {
		return nil, err
	}
	if len(models.Data) == 0 {
		return nil, errors.New("no models")
	}
	out["models"] = models.Data[0].ID

	chat := map[string]any{"model": "gpt-4o-mini", "messages": []any{map[string]string{"role": "user", "content": prompt}}}
	var completion struct {
		Choices []struct{ Message struct{ Content string } }
	}
	if err := call("POST", base+"/chat/completions", auth, chat, &completion); err != nil {
		return nil, err
	}
	if len(completion.Choices) == 0 {
		return nil, errors.New("no choices")
	}
	out["chat"] = completion.Choices[0].Message.Content

	chat["stream"] = true
	var text strings.Builder
	done := false
	err := stream(base+"/chat/completions", auth, chat, func(ev sseEvent) (bool, error) {
		if ev.data == "[DONE]" {
			done = true
			return false, nil
		}
		var chunk struct {
			Choices []struct{ Delta struct{ Content string } }
		}
		if err := json.Unmarshal([]byte(ev.data), &chunk); err != nil {
			return false, err
		}
		for _, c := range chunk.Choices {
			text.WriteString(c.Delta.Content)
		}
		return true, nil
	})
	if err == nil && !done {
		err = errors.New("chat stream ended without [DONE]")
	}
	if err != nil {
		return nil, err
	}
	out["chat-stream"] = text.String()

	body := map[string]any{"model": "gpt-4o-mini", "input": prompt}
	var response struct {
		Output []struct{ Content []struct{ Text string } }
	}
	if err := call("POST", base+"/responses", auth, body, &response); err != nil {
		return nil, err
	}
	if len(response.Output) == 0 || len(response.Output[0].Content) == 0 {
		return nil, errors.New("empty response output")
	}
	out["responses"] = response.Output[0].Content[0].Text

	body["stream"] = true
	text.Reset()
	done = false
	err = stream(base+"/responses", auth, body, func(ev sseEvent) (bool, error) {
		var e struct{ Type, Delta string }
		if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
			return false, err
		}
		if e.Type != ev.name {
			return false, fmt.Errorf("event %q carries type %q", ev.name, e.Type)
		}
		switch e.Type {
		case "response.output_text.delta":
			text.WriteString(e.Delta)
		case "response.completed":
			done = true
		}
		return true, nil
	})
	if err == nil && !done {
		err = errors.New("responses stream ended without response.completed")
	}
	if err != nil {
		return nil, err
	}
	out["responses-stream"] = text.String()
	return out, nil
}

func anthropic() (map[string]string, error) {
	const u = "https://api.anthropic.com/v1/messages"
	auth := http.Header{"X-Api-Key": {os.Getenv("ANTHROPIC_API_KEY")}, "Anthropic-Version": {"2023-06-01"}}
	body := map[string]any{
		"model": "claude-sonnet-4-6", "max_tokens": 64,
		"messages": []any{map[string]string{"role": "user", "content": prompt}},
	}
	var msg struct{ Content []struct{ Type, Text string } }
	if err := call("POST", u, auth, body, &msg); err != nil {
		return nil, err
	}
	if len(msg.Content) == 0 {
		return nil, errors.New("empty message content")
	}
	out := map[string]string{"messages": msg.Content[0].Text}

	body["stream"] = true
	var text strings.Builder
	done := false
	err := stream(u, auth, body, func(ev sseEvent) (bool, error) {
		var e struct {
			Delta struct{ Type, Text string }
			Error struct{ Message string }
		}
		if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
			return false, err
		}
		switch ev.name {
		case "content_block_delta":
			if e.Delta.Type == "text_delta" {
				text.WriteString(e.Delta.Text)
			}
		case "message_stop":
			done = true
		case "error":
			return false, fmt.Errorf("stream error: %s", e.Error.Message)
		}
		return true, nil
	})
	if err == nil && !done {
		err = errors.New("messages stream ended without message_stop")
	}
	if err != nil {
		return nil, err
	}
	out["messages-stream"] = text.String()
	return out, nil
}

func github() (map[string]string, error) {
	token := os.Getenv("GITHUB_TOKEN")
	var user struct{ Login string }
	h := http.Header{"Accept": {"application/vnd.github+json"}, "Authorization": {"Bearer " + token}}
	if err := call("GET", "https://api.github.com/user", h, nil, &user); err != nil {
		return nil, err
	}
	var repo struct {
		FullName string `json:"full_name"`
	}
	h.Set("Authorization", "token "+token)
	if err := call("GET", "https://api.github.com/repos/octo/demo", h, nil, &repo); err != nil {
		return nil, err
	}
	return map[string]string{"user": user.Login, "repo": repo.FullName}, nil
}

// slackAnswer is the envelope of every Slack Web API answer: Slack answers
// 200 to a bad token, with the error in the body.
type slackAnswer struct {
	OK    bool
	Error string
}

func (a slackAnswer) err() error {
	if !a.OK {
		return fmt.Errorf("slack error: %s", a.Error)
	}
	return nil
}

func slack() (map[string]string, error) {
	auth := http.Header{"Authorization": {"Bearer " + os.Getenv("SLACK_BOT_TOKEN")}}
	var who struct {
		slackAnswer
		User string
	}
	if err := call("GET", "https://slack.com/api/auth.test", auth, nil, &who); err != nil {
		return nil, err
	}
	if err := who.err(); err != nil {
		return nil, err
	}
	var posted struct {
		slackAnswer
		Message struct{ Text string }
	}
	msg := map[string]string{"channel": "C0FAKE0001", "text": "hello from the sandbox"}
	if err := call("POST", "https://slack.com/api/chat.postMessage", auth, msg, &posted); err != nil {
		return nil, err
	}
	if err := posted.err(); err != nil {
		return nil, err
	}
	return map[string]string{"auth.test": who.User, "chat.postMessage": posted.Message.Text}, nil
}

func stripe() (map[string]string, error) {
	key := os.Getenv("STRIPE_SECRET_KEY")
	req, err := http.NewRequest("GET", "https://api.stripe.com/v1/customers?limit=1", nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(key, "")
	var customers struct{ Data []struct{ ID string } }
	if err := call("GET", req.URL.String(), req.Header, nil, &customers); err != nil {
		return nil, err
	}
	if len(customers.Data) == 0 {
		return nil, errors.New("no customers")
	}
	form := url.Values{"amount": {"2000"}, "currency": {"usd"}, "source": {"tok_visa"}}
	h := http.Header{"Authorization": {"Bearer " + key}, "Content-Type": {"application/x-www-form-urlencoded"}}
	resp, err := do("POST", "https://api.stripe.com/v1/charges", h, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var charge struct {
		ID, Status, Currency string
		Amount               int
	}
	if err := json.NewDecoder(resp.Body).Decode(&charge); err != nil {
		return nil, err
	}
	return map[string]string{
		"customers": customers.Data[0].ID,
		"charge":    fmt.Sprintf("%s %s %d %s", charge.ID, charge.Status, charge.Amount, charge.Currency),
	}, nil
}
