// Package gateway is standin's egress gateway: every connection leaving a
// sandbox ends here. It terminates TLS with standin's CA where a credential
// must be swapped (or everything, with inspect: all), checks the request
// (Host equals the TLS name, network rules, the stand-in belongs to this
// sandbox and is active), and only then unseals the real value and writes it
// into the secret's auth slot for that host, nowhere else. Responses are
// streamed back with the real value scrubbed out. Every request that used or
// tried to use a secret is recorded.
//
// Two entry points share one request path: an explicit proxy (CONNECT and
// absolute-form HTTP, for sandboxes standin does not run) and HandleConn, for
// connections handed over by the sandbox runtime with their original
// destination already known.
//
// Only this package calls vault.Unseal.
package gateway
