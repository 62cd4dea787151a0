package clients

import (
	"net/http"
	"net/http/cgi"
	"strings"
	"sync"

	"github.com/standin/standin/e2e/harness"
)

// A fake of GitHub: the REST API on api.github.com (GET /user, GET
// /repos/{owner}/{repo}) with "Bearer" or "token" auth, and git's smart
// HTTP protocol on github.com with basic auth, served by git's own
// http-backend over a real bare repository, so that git clone and git push
// run for real.

const (
	githubAPIHost = "api.github.com"
	githubHost    = "github.com"
	// The only repository the fake knows; private, so every access needs
	// the token.
	githubOwner, githubRepo = "octo", "demo"
)

var githubKey = harness.RealValue("ghp_", 36)

func init() {
	harness.Register(githubAPIHost, githubAPIFake())
	harness.Register(githubHost, gitFake)
}

// githubToken is the token of an api.github.com request: GitHub takes
// "Authorization: Bearer" and "Authorization: token".
func githubToken(h http.Header) string {
	if t := bearer(h); t != "" {
		return t
	}
	return schemeToken(h, "token")
}

// gitToken is the token of a github.com request: basic auth with the
// token as password (any user name, x-access-token by convention) or as
// user name.
func gitToken(h http.Header) string {
	user, pass, ok := basicAuth(h)
	switch {
	case !ok:
		return ""
	case pass != "":
		return pass
	default:
		return user
	}
}

func githubAPIFake() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /user", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"login": "octocat", "id": 583231, "type": "User", "name": "The Octocat",
		})
	})
	mux.HandleFunc("GET /repos/{owner}/{repo}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("owner") != githubOwner || r.PathValue("repo") != githubRepo {
			githubError(w, http.StatusNotFound, "Not Found")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": 1296269, "name": githubRepo, "full_name": githubOwner + "/" + githubRepo,
			"private": true, "default_branch": "main", "owner": map[string]any{"login": githubOwner},
		})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		githubError(w, http.StatusNotFound, "Not Found")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !same(githubToken(r.Header), githubKey) {
			githubError(w, http.StatusUnauthorized, "Bad credentials")
			return
		}
		// GitHub refuses API requests without a User-Agent.
		if r.Header.Get("User-Agent") == "" {
			githubError(w, http.StatusForbidden, "Request forbidden by administrative rules. Please make sure your request has a User-Agent header")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func githubError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"message": msg, "documentation_url": "https://docs.github.com/rest"})
}

// gitFake serves the bare repositories under its root (set by the test that
// made them) with git http-backend, after checking the basic credential.
var gitFake = &gitServer{}

type gitServer struct {
	mu      sync.Mutex
	root    string // GIT_PROJECT_ROOT; "" serves nothing
	backend string // git-http-backend's path
}

// serve makes the fake serve the repositories under root with backend.
func (g *gitServer) serve(root, backend string) {
	g.mu.Lock()
	g.root, g.backend = root, backend
	g.mu.Unlock()
}

func (g *gitServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !same(gitToken(r.Header), githubKey) {
		// What GitHub answers for a private repository: git then asks
		// its credential helper and tries again.
		w.Header().Set("WWW-Authenticate", `Basic realm="GitHub"`)
		http.Error(w, "Invalid username or token.", http.StatusUnauthorized)
		return
	}
	g.mu.Lock()
	root, backend := g.root, g.backend
	g.mu.Unlock()
	if root == "" || !strings.HasPrefix(r.URL.Path, "/"+githubOwner+"/"+githubRepo+".git/") {
		http.Error(w, "Repository not found.", http.StatusNotFound)
		return
	}
	h := &cgi.Handler{
		Path: backend,
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
		},
	}
	h.ServeHTTP(w, r)
}
