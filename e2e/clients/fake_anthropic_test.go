package clients

import (
	"net/http"

	"github.com/standin/standin/e2e/harness"
)

// A fake of the Anthropic Messages API (api.anthropic.com): POST
// /v1/messages, plain and streamed, with the key in x-api-key or (as the
// @anthropic-ai/sdk 1.x sends it) Authorization: Bearer, the
// anthropic-version header and Anthropic's error bodies.

const anthropicHost = "api.anthropic.com"

var anthropicKey = harness.RealValue("sk-ant-api03-", 64)

func init() { harness.Register(anthropicHost, anthropicFake()) }

// anthropicToken is the key of a request in either of its slots.
func anthropicToken(h http.Header) string {
	if k := h.Get("X-Api-Key"); k != "" {
		return k
	}
	return bearer(h)
}

func anthropicFake() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", anthropicMessages)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		anthropicError(w, http.StatusNotFound, "not_found_error", "Not found")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !same(anthropicToken(r.Header), anthropicKey) {
			anthropicError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
			return
		}
		if r.Header.Get("Anthropic-Version") == "" {
			anthropicError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func anthropicError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
}

func anthropicMessages(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model     string `json:"model"`
		MaxTokens int    `json:"max_tokens"`
		Messages  []struct {
			Role    string `json:"role"`
			Content any    `json:"content"`
		} `json:"messages"`
		Stream bool `json:"stream"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Model == "" || req.MaxTokens <= 0 || len(req.Messages) == 0 {
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "model, max_tokens and messages are required")
		return
	}
	text := youSaid + promptText(req.Messages[len(req.Messages)-1].Content)
	message := func(content []any, stop any, outTokens int) map[string]any {
		return map[string]any{
			"id": "msg_fake1", "type": "message", "role": "assistant", "model": req.Model,
			"content": content, "stop_reason": stop, "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": 8, "output_tokens": outTokens},
		}
	}
	if !req.Stream {
		writeJSON(w, http.StatusOK, message([]any{map[string]any{"type": "text", "text": text}}, "end_turn", 4))
		return
	}
	s := newSSE(w)
	emit := func(typ string, fields map[string]any) {
		fields["type"] = typ
		s.event(typ, fields)
	}
	emit("message_start", map[string]any{"message": message([]any{}, nil, 1)})
	emit("content_block_start", map[string]any{"index": 0, "content_block": map[string]any{"type": "text", "text": ""}})
	emit("ping", map[string]any{})
	for _, d := range chunks(text, 4) {
		emit("content_block_delta", map[string]any{"index": 0, "delta": map[string]any{"type": "text_delta", "text": d}})
	}
	emit("content_block_stop", map[string]any{"index": 0})
	emit("message_delta", map[string]any{
		"delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": 4},
	})
	emit("message_stop", map[string]any{})
}
