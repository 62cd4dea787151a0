package clients

import (
	"mime"
	"net/http"
	"strconv"

	"github.com/standin/standin/e2e/harness"
)

// A fake of the Stripe API (api.stripe.com): list customers and create a
// charge from a form body, with the secret key as a bearer token or as the
// basic-auth user name (curl -u "$KEY:", Stripe's documented form).

const stripeHost = "api.stripe.com"

var stripeKey = harness.RealValue("sk_test_", 99)

func init() { harness.Register(stripeHost, stripeFake()) }

// stripeToken is the key of a request in either of Stripe's slots.
func stripeToken(h http.Header) string {
	if t := bearer(h); t != "" {
		return t
	}
	user, _, _ := basicAuth(h)
	return user
}

func stripeFake() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/customers", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"object": "list", "url": "/v1/customers", "has_more": false,
			"data": []any{map[string]any{"id": "cus_Fake0001", "object": "customer", "email": "jenny.rosen@example.com"}},
		})
	})
	mux.HandleFunc("POST /v1/charges", func(w http.ResponseWriter, r *http.Request) {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
			stripeError(w, http.StatusBadRequest, "invalid_request_error", "Stripe takes form-encoded bodies")
			return
		}
		amount, err := strconv.Atoi(r.PostFormValue("amount"))
		if err != nil || amount <= 0 {
			stripeError(w, http.StatusBadRequest, "invalid_request_error", "Missing required param: amount.")
			return
		}
		currency := r.PostFormValue("currency")
		if currency == "" {
			stripeError(w, http.StatusBadRequest, "invalid_request_error", "Missing required param: currency.")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": "ch_Fake0001", "object": "charge", "amount": amount, "currency": currency,
			"paid": true, "status": "succeeded", "source": map[string]any{"id": r.PostFormValue("source")},
		})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		stripeError(w, http.StatusNotFound, "invalid_request_error", "Unrecognized request URL ("+r.Method+": "+r.URL.Path+").")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !same(stripeToken(r.Header), stripeKey) {
			// Stripe names the key's last characters; the fake names
			// nothing of it.
			stripeError(w, http.StatusUnauthorized, "invalid_request_error", "Invalid API Key provided.")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func stripeError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"type": typ, "message": msg}})
}
