package vault

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// leaks reports whether s shows the secret in any common encoding.
func leaks(s, secret string) bool {
	return strings.Contains(s, secret) ||
		strings.Contains(strings.ToLower(s), hex.EncodeToString([]byte(secret))) ||
		strings.Contains(s, fmt.Sprint([]byte(secret))) ||
		strings.Contains(s, fmt.Sprintf("%d", []byte(secret)[:4]))
}

// holders are the shapes a Value travels in.
type holders struct {
	Exported   Value
	unexported Value
	Ptr        *Value
	Slice      []Value
	Map        map[string]Value
	Any        any
}

func TestValueFormatRedacts(t *testing.T) {
	v := NewValue([]byte(testValue))
	h := holders{Exported: v, unexported: v, Ptr: &v, Slice: []Value{v}, Map: map[string]Value{"k": v}, Any: v}
	args := map[string]any{"Value": v, "*Value": &v, "struct": h, "*struct": &h, "[]Value": []Value{v, v}}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "% x", "%d", "%o", "%b", "%c", "%U", "%T", "%p", "%10.3s", "%-20v", "%08x", "%t", "%e", "%z"}
	for name, arg := range args {
		for _, verb := range verbs {
			got := fmt.Sprintf(verb, arg)
			if leaks(got, testValue) {
				t.Errorf("Sprintf(%q, %s) = %q, leaks the value", verb, name, got)
			}
		}
		for _, got := range []string{fmt.Sprint(arg), fmt.Sprintln(arg)} {
			if leaks(got, testValue) {
				t.Errorf("Sprint(%s) = %q, leaks the value", name, got)
			}
		}
	}
	if got := fmt.Sprintf("%v", v); got != "[REDACTED]" {
		t.Errorf("Sprintf(%%v, v) = %q, want [REDACTED]", got)
	}
	if got := v.String() + v.GoString(); got != "[REDACTED][REDACTED]" {
		t.Errorf("String()+GoString() = %q", got)
	}
	err := fmt.Errorf("call failed with %v: %w", v, errors.New("x"))
	if leaks(err.Error(), testValue) {
		t.Errorf("error %q leaks the value", err)
	}
}

func TestValueSlogRedacts(t *testing.T) {
	v := NewValue([]byte(testValue))
	h := holders{Exported: v, Ptr: &v, Slice: []Value{v}, Map: map[string]Value{"k": v}, Any: v}
	var buf bytes.Buffer
	for _, handler := range []slog.Handler{
		slog.NewJSONHandler(&buf, &slog.HandlerOptions{AddSource: true}),
		slog.NewTextHandler(&buf, nil),
	} {
		log := slog.New(handler)
		log.Info("value", "v", v, "ptr", &v)
		log.Info("any", slog.Any("v", v), slog.Any("struct", h))
		log.Info("group", slog.Group("g", "v", v))
		log.With("v", v).Info("with")
		log.Error("error", "error", fmt.Errorf("wrap %v", v))
	}
	if out := buf.String(); leaks(out, testValue) {
		t.Errorf("slog output leaks the value:\n%s", out)
	}
	if !strings.Contains(buf.String(), `"v":"[REDACTED]"`) || !strings.Contains(buf.String(), "v=[REDACTED]") {
		t.Errorf("slog output lacks [REDACTED]:\n%s", buf.String())
	}
}

func TestValueMarshalRedacts(t *testing.T) {
	v := NewValue([]byte(testValue))
	h := holders{Exported: v, unexported: v, Ptr: &v, Slice: []Value{v}, Map: map[string]Value{"k": v}, Any: v}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	if leaks(string(b), testValue) {
		t.Errorf("json.Marshal = %s, leaks the value", b)
	}
	want := `{"Exported":"[REDACTED]","Ptr":"[REDACTED]","Slice":["[REDACTED]"],"Map":{"k":"[REDACTED]"},"Any":"[REDACTED]"}`
	if string(b) != want {
		t.Errorf("json.Marshal = %s, want %s", b, want)
	}
	text, _ := v.MarshalText()
	if string(text) != "[REDACTED]" {
		t.Errorf("MarshalText() = %q", text)
	}
}
