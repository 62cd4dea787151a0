package api

import "net/http"

// route is one API endpoint. The same table registers the mux and is
// compared with openapi.json by a test, so the two cannot drift apart.
type route struct {
	method string
	path   string // Go 1.22 ServeMux path pattern, also the OpenAPI path
	public bool   // served without the bearer token
	handle func(s *Server, w http.ResponseWriter, r *http.Request) error
}

func (rt route) pattern() string { return rt.method + " " + rt.path }

var routes = []route{
	{method: http.MethodGet, path: "/v1/health", public: true, handle: (*Server).health},
	{method: http.MethodGet, path: "/v1/openapi.json", handle: (*Server).openAPI},
	{method: http.MethodGet, path: "/v1/providers", handle: (*Server).listProviders},

	{method: http.MethodPost, path: "/v1/secrets", handle: (*Server).createSecret},
	{method: http.MethodGet, path: "/v1/secrets", handle: (*Server).listSecrets},
	{method: http.MethodGet, path: "/v1/secrets/{name}", handle: (*Server).getSecret},
	{method: http.MethodPost, path: "/v1/secrets/{name}/rotate", handle: (*Server).rotateSecret},
	{method: http.MethodDelete, path: "/v1/secrets/{name}", handle: (*Server).deleteSecret},
	{method: http.MethodGet, path: "/v1/secrets/{name}/sandboxes", handle: (*Server).secretSandboxes},
	{method: http.MethodGet, path: "/v1/secrets/{name}/activity", handle: (*Server).secretActivity},

	{method: http.MethodPost, path: "/v1/sandboxes", handle: (*Server).createSandbox},
	{method: http.MethodGet, path: "/v1/sandboxes", handle: (*Server).listSandboxes},
	{method: http.MethodGet, path: "/v1/sandboxes/{name}", handle: (*Server).getSandbox},
	{method: http.MethodDelete, path: "/v1/sandboxes/{name}", handle: (*Server).deleteSandbox},
	{method: http.MethodPost, path: "/v1/sandboxes/{name}/secrets", handle: (*Server).attach},
	{method: http.MethodDelete, path: "/v1/sandboxes/{name}/secrets/{env}", handle: (*Server).detach},
	{method: http.MethodPut, path: "/v1/sandboxes/{name}/network", handle: (*Server).setNetwork},
	{method: http.MethodGet, path: "/v1/sandboxes/{name}/env", handle: (*Server).sandboxEnv},
	{method: http.MethodPost, path: "/v1/sandboxes/{name}/exec", handle: (*Server).exec},
	{method: http.MethodPut, path: "/v1/sandboxes/{name}/files", handle: (*Server).putFile},
	{method: http.MethodGet, path: "/v1/sandboxes/{name}/files", handle: (*Server).getFile},
	{method: http.MethodGet, path: "/v1/ca", handle: (*Server).caCert},
}
