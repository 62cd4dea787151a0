package api

import (
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/standin/standin/client"
)

type openAPIDocument struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		} `json:"schemas"`
	} `json:"components"`
}

func loadOpenAPI(tb testing.TB) openAPIDocument {
	tb.Helper()
	var doc openAPIDocument
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		tb.Fatalf("parse openapi.json: %v", err)
	}
	return doc
}

// TestOpenAPIMatchesRoutes compares the route table (which registers the
// mux) with the document's paths and methods, both ways.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	var served []string
	for _, rt := range routes {
		served = append(served, rt.pattern())
	}
	sort.Strings(documented)
	sort.Strings(served)
	if diff := cmp.Diff(served, documented); diff != "" {
		t.Errorf("routes (-served +documented):\n%s", diff)
	}
}

// TestOpenAPIPublicRoutes checks the document marks exactly the public
// routes as needing no security.
func TestOpenAPIPublicRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	for _, rt := range routes {
		var op struct {
			Security *[]any `json:"security"`
		}
		if err := json.Unmarshal(doc.Paths[rt.path][strings.ToLower(rt.method)], &op); err != nil {
			t.Fatalf("%s: %v", rt.pattern(), err)
		}
		noAuth := op.Security != nil && len(*op.Security) == 0
		if noAuth != rt.public {
			t.Errorf("%s: documented without auth = %v, served public = %v", rt.pattern(), noAuth, rt.public)
		}
	}
}

// TestOpenAPISchemasMatchTypes compares each schema's properties with the
// JSON fields of the client type it describes, and checks every $ref
// resolves.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	types := map[string]any{
		"AuthSlot": client.AuthSlot{}, "HostAuth": client.HostAuth{}, "SecretCreate": client.SecretCreate{},
		"SecretRotate": client.SecretRotate{}, "Secret": client.Secret{}, "NetworkRules": client.NetworkRules{},
		"SandboxCreate": client.SandboxCreate{}, "Sandbox": client.Sandbox{}, "Binding": client.Binding{},
		"Attach": client.Attach{}, "Activity": client.Activity{}, "ActivityPage": client.ActivityPage{},
		"Format": client.Format{}, "Provider": client.Provider{},
		"ProviderList": client.List[client.Provider]{}, "SecretList": client.List[client.Secret]{},
		"SandboxList": client.List[client.Sandbox]{}, "BindingList": client.List[client.Binding]{},
		"ErrorBody": client.ErrorBody{}, "ErrorDetail": client.ErrorDetail{},
		"SandboxEnv": client.SandboxEnv{}, "CACert": client.CACert{},
		"ExecRequest": client.ExecRequest{}, "ExecEvent": client.ExecEvent{}, "ExecInput": client.ExecInput{}, "WindowSize": client.WindowSize{},
		"Health": struct {
			Status string `json:"status"`
		}{},
	}
	for name, v := range types {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s missing from openapi.json", name)
			continue
		}
		var props []string
		for p := range s.Properties {
			props = append(props, p)
		}
		sort.Strings(props)
		fields := jsonFields(reflect.TypeOf(v))
		sort.Strings(fields)
		if diff := cmp.Diff(fields, props); diff != "" {
			t.Errorf("schema %s properties (-Go fields +schema):\n%s", name, diff)
		}
		for _, r := range s.Required {
			if !slices.Contains(fields, r) {
				t.Errorf("schema %s requires %q, which %T lacks", name, r, v)
			}
		}
	}
	for name := range doc.Components.Schemas {
		if _, ok := types[name]; !ok {
			t.Errorf("schema %s has no Go type in this test", name)
		}
	}

	var all any
	if err := json.Unmarshal(openAPIDoc, &all); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok && !resolves(all, ref) {
				t.Errorf("$ref %q does not resolve", ref)
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(all)
}

func resolves(doc any, ref string) bool {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	cur := doc
	for _, part := range strings.Split(rest, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return true
}

// TestErrorCodesDocumented checks every code constant is in the document's
// enum, and the reverse.
func TestErrorCodesDocumented(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas struct {
				ErrorDetail struct {
					Properties struct {
						Code struct {
							Enum []string `json:"enum"`
						} `json:"code"`
					} `json:"properties"`
				} `json:"ErrorDetail"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	got := doc.Components.Schemas.ErrorDetail.Properties.Code.Enum
	want := []string{CodeInvalidJSON, CodeRequestTooLarge, CodeUnknownProvider, CodeInvalidHost, CodeInvalidEnvVar,
		CodeInvalidName, CodeValueTooLarge, CodeInvalidValue, CodeInvalidField, CodeInvalidQuery, CodeAlreadyExists,
		CodeConflict, CodeNotFound, CodeInvalidRule, CodeMethodNotAllowed, CodeUnauthorized, CodeInternal,
		CodeNotRunning, CodeRuntimeUnavailable, CodeStartFailed, CodeFileFailed}
	sort.Strings(got)
	sort.Strings(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("error codes (-code constants +openapi enum):\n%s", diff)
	}
}

// TestRequestBodiesMirrorClient keeps the server's decoding structs (which
// hold the value as wipeable bytes) in step with the client's types.
func TestRequestBodiesMirrorClient(t *testing.T) {
	for _, tt := range []struct{ server, client any }{
		{secretCreateBody{}, client.SecretCreate{}},
		{secretRotateBody{}, client.SecretRotate{}},
	} {
		st, ct := reflect.TypeOf(tt.server), reflect.TypeOf(tt.client)
		if st.NumField() != ct.NumField() {
			t.Fatalf("%v has %d fields, %v has %d", st, st.NumField(), ct, ct.NumField())
		}
		for i := range st.NumField() {
			sf, cf := st.Field(i), ct.Field(i)
			if sf.Name != cf.Name || sf.Tag != cf.Tag {
				t.Errorf("%v field %d = %s `%s`, %v has %s `%s`", st, i, sf.Name, sf.Tag, ct, cf.Name, cf.Tag)
			}
			if sf.Name != "Value" && sf.Type != cf.Type {
				t.Errorf("%v.%s is %v, client's is %v", st, sf.Name, sf.Type, cf.Type)
			}
		}
	}
}
