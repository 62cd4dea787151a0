package client

import "time"

// This file holds the API's wire types. internal/api encodes exactly these
// values, so the SDK and the server cannot drift apart. No type here ever
// carries a secret value in a response: SecretCreate and SecretRotate are
// request bodies only.

// Auth slot kinds, as used in AuthSlot.Type.
const (
	SlotHeader = "header" // a named header holding Template with {value} replaced
	SlotBearer = "bearer" // Authorization: Bearer {value}
	SlotBasic  = "basic"  // Authorization: Basic base64(user:password)
	SlotQuery  = "query"  // a URL query parameter
)

// AuthSlot says where a credential goes in a request to one host.
type AuthSlot struct {
	// Type is one of header, bearer, basic, query.
	Type string `json:"type"`
	// Header is the header name for type header (default Authorization for
	// bearer and basic).
	Header string `json:"header,omitempty"`
	// Template is the header value for type header; it contains {value}
	// exactly once, e.g. "token {value}".
	Template string `json:"template,omitempty"`
	// Username is, for basic, the fixed user name sent with the secret as the
	// password (e.g. "__token__"); empty means the client chooses it.
	Username string `json:"username,omitempty"`
	// SecretIn is, for basic, which half holds the secret: "password"
	// (default) or "username" (Stripe: key as user, empty password).
	SecretIn string `json:"secretIn,omitempty"`
	// Param is the query parameter name for type query.
	Param string `json:"param,omitempty"`
}

// HostAuth binds an auth slot to a host pattern: exact ("api.github.com")
// or one-label wildcard ("*.example.com").
type HostAuth struct {
	Host string   `json:"host"`
	Auth AuthSlot `json:"auth"`
}

// SecretCreate is the body of POST /v1/secrets.
type SecretCreate struct {
	Name string `json:"name"`
	// Provider is a catalog id ("anthropic"); empty or "custom" means Hosts
	// must be given.
	Provider string `json:"provider,omitempty"`
	// Hosts overrides or, for custom secrets, defines where the secret is
	// sent and how. At most 16.
	Hosts []HostAuth `json:"hosts,omitempty"`
	// Value is the credential. At most 8 KiB. Never returned by any call.
	Value string `json:"value"`
	// Description is free text shown in listings.
	Description string `json:"description,omitempty"`
}

// SecretRotate is the body of POST /v1/secrets/{name}/rotate.
type SecretRotate struct {
	Value string `json:"value"`
}

// Secret is a secret's metadata. It never holds the value.
type Secret struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Provider    string     `json:"provider"`
	Description string     `json:"description,omitempty"`
	Hosts       []HostAuth `json:"hosts"`
	// Format names the stand-in format chosen for this value
	// ("classic personal access token").
	Format    string    `json:"format"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"createdAt"`
	RotatedAt time.Time `json:"rotatedAt"`
}

// NetworkRules are a sandbox's egress rules. An allow match wins over a deny
// match; no rules at all means every public destination.
type NetworkRules struct {
	AllowOut []string `json:"allowOut"`
	DenyOut  []string `json:"denyOut"`
	// Inspect is "" (terminate TLS only where a secret is bound) or "all".
	Inspect string `json:"inspect,omitempty"`
}

// SandboxCreate is the body of POST /v1/sandboxes.
type SandboxCreate struct {
	Name string `json:"name"`
	// Secrets maps environment variable names to secret names.
	Secrets map[string]string `json:"secrets,omitempty"`
	Network NetworkRules      `json:"network"`
	// Timeout, if set, is how long the sandbox may run (a Go duration such
	// as "30m", at most "24h"). When it has passed, the sandbox is stopped
	// and its state becomes "expired"; the record stays until deleted.
	Timeout string `json:"timeout,omitempty"`
}

// Sandbox is a sandbox record. Bindings carry the stand-ins the sandbox sees
// in its environment; a stand-in is worthless outside this sandbox.
type Sandbox struct {
	ID        string       `json:"id"`
	Name      string       `json:"name"`
	State     string       `json:"state"`
	Network   NetworkRules `json:"network"`
	Bindings  []Binding    `json:"bindings"`
	CreatedAt time.Time    `json:"createdAt"`
	// ExpiresAt is when the sandbox's timeout stops it; nil if it has none
	// (or it has passed).
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// Binding attaches a secret to a sandbox under an environment variable.
type Binding struct {
	Sandbox string `json:"sandbox"`
	EnvVar  string `json:"envVar"`
	Secret  string `json:"secret"`
	// StandIn is the token the sandbox sees in EnvVar.
	StandIn   string    `json:"standIn"`
	CreatedAt time.Time `json:"createdAt"`
}

// Attach is the body of POST /v1/sandboxes/{name}/secrets.
type Attach struct {
	EnvVar string `json:"envVar"`
	Secret string `json:"secret"`
	// StandIn, if set, is used as the stand-in instead of a minted one:
	// for clients whose placeholder key is fixed (a fixture, a benchmark
	// tool). 16 to 256 printable ASCII characters, unique across all
	// bindings. It is stored only as a keyed hash, so later views show it
	// empty. A minted stand-in is better: it has the provider's shape.
	StandIn string `json:"standIn,omitempty"`
}

// Activity is one request made (or refused) with a secret.
type Activity struct {
	ID             string    `json:"id"`
	Time           time.Time `json:"time"`
	Secret         string    `json:"secret"`
	Sandbox        string    `json:"sandbox"`
	Method         string    `json:"method"`
	Host           string    `json:"host"`
	Path           string    `json:"path"`
	Status         int       `json:"status"`
	UpstreamStatus int       `json:"upstreamStatus,omitempty"`
	LatencyMS      float64   `json:"latencyMs"`
	BytesIn        int64     `json:"bytesIn"`
	BytesOut       int64     `json:"bytesOut"`
	Outcome        string    `json:"outcome"`
	Reason         string    `json:"reason,omitempty"`
}

// ActivityPage is one page of a secret's activity, newest first. Pass
// NextCursor back as ?cursor= for the next page; empty means the end.
type ActivityPage struct {
	Items      []Activity `json:"items"`
	NextCursor string     `json:"nextCursor,omitempty"`
}

// Format describes the shape of a provider's key and so of its stand-ins.
type Format struct {
	Name     string `json:"name"`
	Prefix   string `json:"prefix"`
	Regex    string `json:"regex"`
	Checksum string `json:"checksum,omitempty"`
}

// Provider is a catalog entry.
type Provider struct {
	ID      string     `json:"id"`
	Name    string     `json:"name"`
	EnvVar  string     `json:"envVar"`
	Hosts   []HostAuth `json:"hosts"`
	Formats []Format   `json:"formats"`
	// Unsupported lists hosts of this provider that standin cannot serve,
	// with the reason (e.g. "token in URL path").
	Unsupported []string `json:"unsupported,omitempty"`
}

// List wraps every listing response.
type List[T any] struct {
	Items []T `json:"items"`
}

// ErrorBody is every error response: {"error":{"code","message"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the code (stable, for programs) and message (for people).
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// SandboxEnv is what a sandbox that standin does not run needs in its
// environment: HTTPS_PROXY and friends with the sandbox's proxy credential,
// one variable per bound secret holding its stand-in, and the CA variables
// (SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE,
// GIT_SSL_CAINFO) pointing at CAFile.
type SandboxEnv struct {
	Env    []string `json:"env"`
	CAFile string   `json:"caFile"`
	CACert string   `json:"caCert"`
}

// CACert is the body of GET /v1/ca.
type CACert struct {
	PEM string `json:"pem"`
}

// ExecRequest is the body of POST /v1/sandboxes/{name}/exec.
type ExecRequest struct {
	// Args is the command and its arguments; Args[0] is looked up in PATH.
	Args []string `json:"args"`
	// Env ("KEY=value") is added to the sandbox's environment (its
	// stand-ins and CA variables) for this command, and overrides it.
	Env []string `json:"env,omitempty"`
	// Dir is the working directory; empty means the sandbox's $HOME.
	Dir string `json:"dir,omitempty"`
	// Stdin is the command's standard input (base64 in JSON), at most
	// 1 MiB; empty means an empty input. In an interactive exec it is the
	// start of the input, and ExecInput lines carry the rest.
	Stdin []byte `json:"stdin,omitempty"`
	// TTY runs the command on a pseudo-terminal of Rows x Cols (zero
	// means 24 x 80); its output, both streams merged, arrives as
	// "stdout". An interactive exec can change the size later
	// (ExecInput.Resize).
	TTY  bool   `json:"tty,omitempty"`
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
}

// ExecInput is a line of an interactive exec's request body (Content-Type
// application/x-ndjson): the first line is the ExecRequest, each later one
// an ExecInput. The end of the body, or EOF, closes the command's input.
type ExecInput struct {
	// Stdin is more input for the command (base64 in JSON), at most 1 MiB
	// a line.
	Stdin []byte `json:"stdin,omitempty"`
	// EOF closes the command's standard input.
	EOF bool `json:"eof,omitempty"`
	// Resize sets a new terminal size for a TTY command.
	Resize *WindowSize `json:"resize,omitempty"`
}

// WindowSize is a terminal's size in characters.
type WindowSize struct {
	Rows uint16 `json:"rows"`
	Cols uint16 `json:"cols"`
}

// ExecEvent is one line of the NDJSON stream that answers an exec: output
// as it arrives (Stream and Data), then one last line with ExitCode or
// Error.
type ExecEvent struct {
	// Stream is "stdout" or "stderr" for an output event.
	Stream string `json:"stream,omitempty"`
	// Data is a chunk of output (base64 in JSON).
	Data []byte `json:"data,omitempty"`
	// ExitCode is the command's exit status (128+n if signal n killed it),
	// in the last event when the command ran.
	ExitCode *int `json:"exitCode,omitempty"`
	// Error is set in the last event when the command could not be run or
	// waited for.
	Error *ErrorDetail `json:"error,omitempty"`
}
