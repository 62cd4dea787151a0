package api

import (
	"github.com/standin/standin/client"

	"net/http"
	"net/url"
	"sort"
)

// caEnvVars are the variables common TLS stacks read a CA bundle from:
// OpenSSL (curl, python ssl), Node, requests, curl, git.
var caEnvVars = []string{"SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"}

// sandboxEnv answers GET /v1/sandboxes/{name}/env: everything a sandbox
// that standin does not run needs to send its traffic through the
// gateway. The proxy credential is derived from the sandbox id, so it ends
// with the sandbox.
func (s *Server) sandboxEnv(w http.ResponseWriter, r *http.Request) error {
	sb, err := s.sandboxByName(r, r.PathValue("name"))
	if err != nil {
		return err
	}
	v, err := s.sandboxView(r, sb)
	if err != nil {
		return err
	}
	var env []string
	if s.Proxy != "" {
		u := url.URL{Scheme: "http", User: url.UserPassword(sb.Name, s.Minter.ProxyToken(sb.ID)), Host: s.Proxy}
		for _, k := range []string{"HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY"} {
			env = append(env, k+"="+u.String())
		}
		env = append(env, "NO_PROXY=", "no_proxy=")
	}
	if s.CAFile != "" {
		for _, k := range caEnvVars {
			env = append(env, k+"="+s.CAFile)
		}
	}
	var secrets []string
	for _, b := range v.Bindings {
		secrets = append(secrets, b.EnvVar+"="+b.StandIn)
	}
	sort.Strings(secrets)
	env = append(env, secrets...)
	writeJSON(w, http.StatusOK, client.SandboxEnv{Env: env, CAFile: s.CAFile, CACert: string(s.CACert)})
	return nil
}

// caCert answers GET /v1/ca.
func (s *Server) caCert(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, client.CACert{PEM: string(s.CACert)})
	return nil
}
