package clients

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// curl prints raw answers (testdata/curl.sh): these read them the way the
// other clients read theirs.

// extractor reads one call's answer out of a raw response body.
type extractor func(body string) (string, error)

// curlAnswers splits curl.sh's output at its "=== PROVIDER CALL" lines and
// reads each call's answer with the provider's extractor for it. A call
// curl failed makes the provider's answers an error.
func curlAnswers(stdout string) (answers, error) {
	out := answers{}
	var id, call string
	var body strings.Builder
	flush := func() error {
		if call == "" || out[id]["error"] != "" {
			return nil
		}
		i := slices.IndexFunc(providers, func(p provider) bool { return p.id == id })
		if i < 0 || providers[i].curl[call] == nil {
			return fmt.Errorf("curl.sh made call %q of %q, which the test does not know", call, id)
		}
		v, err := providers[i].curl[call](body.String())
		if err != nil {
			v, err = "", fmt.Errorf("call %q: %w", call, err)
		}
		if out[id] == nil {
			out[id] = map[string]string{}
		}
		if err != nil {
			out[id] = map[string]string{"error": err.Error()}
		} else {
			out[id][call] = v
		}
		return nil
	}
	for _, line := range strings.SplitAfter(stdout, "\n") {
		head, ok := strings.CutPrefix(line, "=== ")
		if !ok {
			body.WriteString(line)
			continue
		}
		if f := strings.Fields(head); len(f) == 3 && f[2] == "failed" {
			out[f[0]] = map[string]string{"error": fmt.Sprintf("curl failed on call %q: %s", f[1], strings.TrimSpace(body.String()))}
			call = ""
			continue
		}
		if err := flush(); err != nil {
			return nil, err
		}
		f := strings.Fields(head)
		if len(f) != 2 {
			return nil, fmt.Errorf("curl.sh printed %q, want \"=== PROVIDER CALL\"", strings.TrimSpace(line))
		}
		id, call = f[0], f[1]
		body.Reset()
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// at walks a decoded JSON value along path (object keys and array
// indexes).
func at(v any, path ...any) (any, error) {
	for _, step := range path {
		switch s := step.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("no object for key %q", s)
			}
			if v, ok = m[s]; !ok {
				return nil, fmt.Errorf("no key %q", s)
			}
		case int:
			a, ok := v.([]any)
			if !ok || s >= len(a) {
				return nil, fmt.Errorf("no element %d", s)
			}
			v = a[s]
		}
	}
	return v, nil
}

// scalar formats a JSON string or number as text.
func scalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case float64:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("%v is not a string or a number", v)
}

// jsonAt reads the string or number at path of a JSON body.
func jsonAt(path ...any) extractor {
	return func(body string) (string, error) {
		var v any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			return "", err
		}
		x, err := at(v, path...)
		if err != nil {
			return "", err
		}
		return scalar(x)
	}
}

// joined joins the answers of several extractors with spaces.
func joined(exs ...extractor) extractor {
	return func(body string) (string, error) {
		var parts []string
		for _, ex := range exs {
			v, err := ex(body)
			if err != nil {
				return "", err
			}
			parts = append(parts, v)
		}
		return strings.Join(parts, " "), nil
	}
}

// slackOK fails unless a Slack answer says "ok": true (Slack answers 200 to
// a bad token, with the error in the body), then reads it with ex.
func slackOK(ex extractor) extractor {
	return func(body string) (string, error) {
		var a struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			return "", err
		}
		if !a.OK {
			return "", fmt.Errorf("slack error %q", a.Error)
		}
		return ex(body)
	}
}

type sseEvent struct{ name, data string }

// parseSSE splits a text/event-stream body into its events.
func parseSSE(body string) []sseEvent {
	var out []sseEvent
	var ev sseEvent
	var data []string
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSuffix(line, "\r")
		switch {
		case line == "":
			if len(data) > 0 {
				ev.data = strings.Join(data, "\n")
				out = append(out, ev)
			}
			ev, data = sseEvent{}, nil
		case strings.HasPrefix(line, "event:"):
			ev.name = strings.TrimSpace(line[len("event:"):])
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(line[len("data:"):], " "))
		}
	}
	if len(data) > 0 {
		ev.data = strings.Join(data, "\n")
		out = append(out, ev)
	}
	return out
}

// sseText joins the text at path of every event named delta ("" for
// data-only streams) of a stream that must end with the event named end,
// or for data-only streams with the data end ("[DONE]"), and have nothing
// after it.
func sseText(delta, end string, path ...any) extractor {
	return func(body string) (string, error) {
		var text strings.Builder
		ended := false
		for _, ev := range parseSSE(body) {
			if ended {
				return "", errors.New("events after the end of the stream")
			}
			if ev.name == end || (ev.name == "" && ev.data == end) {
				ended = true
				continue
			}
			if ev.name != delta {
				continue
			}
			var v any
			if err := json.Unmarshal([]byte(ev.data), &v); err != nil {
				return "", fmt.Errorf("event %q: %w", ev.name, err)
			}
			x, err := at(v, path...)
			if err != nil {
				// A chat completions stream's first and last chunks carry
				// no content.
				continue
			}
			s, err := scalar(x)
			if err != nil {
				return "", err
			}
			text.WriteString(s)
		}
		if !ended {
			return "", fmt.Errorf("stream ended without %q", end)
		}
		return text.String(), nil
	}
}
