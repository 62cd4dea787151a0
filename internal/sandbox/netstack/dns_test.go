package netstack

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/dns/dnsmessage"
)

func newTestDNS(tb testing.TB, pool string, allowed ...string) *DNS {
	tb.Helper()
	var p netip.Prefix
	if pool != "" {
		p = netip.MustParsePrefix(pool)
	}
	d, err := NewDNS(p, func(name string) bool {
		for _, a := range allowed {
			if a == name {
				return true
			}
		}
		return false
	})
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// summary is the part of a reply the tests compare.
type summary struct {
	ID      uint16
	RCode   dnsmessage.RCode
	Answers []string
	Qs      int
}

func summarize(tb testing.TB, b []byte) summary {
	tb.Helper()
	var m dnsmessage.Message
	if err := m.Unpack(b); err != nil {
		tb.Fatalf("reply does not parse: %v", err)
	}
	if !m.Response {
		tb.Errorf("reply is not marked as a response")
	}
	s := summary{ID: m.ID, RCode: m.RCode, Qs: len(m.Questions)}
	for _, a := range m.Answers {
		if r, ok := a.Body.(*dnsmessage.AResource); ok {
			s.Answers = append(s.Answers, a.Header.Name.String()+" "+netip.AddrFrom4(r.A).String())
		} else {
			s.Answers = append(s.Answers, a.Header.Type.String())
		}
	}
	return s
}

func query(tb testing.TB, h dnsmessage.Header, qs ...dnsmessage.Question) []byte {
	tb.Helper()
	b, err := (&dnsmessage.Message{Header: h, Questions: qs}).Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func q(name string, typ dnsmessage.Type) dnsmessage.Question {
	return dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}
}

func TestAnswer(t *testing.T) {
	h := dnsmessage.Header{ID: 42, RecursionDesired: true}
	chaos := q("allowed.test.", dnsmessage.TypeA)
	chaos.Class = dnsmessage.ClassCHAOS
	tests := []struct {
		name string
		msg  []byte
		want summary
	}{
		{"allowed A", query(t, h, q("allowed.test.", dnsmessage.TypeA)),
			summary{ID: 42, RCode: dnsmessage.RCodeSuccess, Qs: 1, Answers: []string{"allowed.test. 198.18.0.1"}}},
		{"case and same address", query(t, h, q("ALLOWED.Test.", dnsmessage.TypeA)),
			summary{ID: 42, RCode: dnsmessage.RCodeSuccess, Qs: 1, Answers: []string{"ALLOWED.Test. 198.18.0.1"}}},
		{"second name", query(t, h, q("second.test.", dnsmessage.TypeA)),
			summary{ID: 42, RCode: dnsmessage.RCodeSuccess, Qs: 1, Answers: []string{"second.test. 198.18.0.2"}}},
		{"allowed AAAA", query(t, h, q("allowed.test.", dnsmessage.TypeAAAA)),
			summary{ID: 42, RCode: dnsmessage.RCodeSuccess, Qs: 1}},
		{"allowed MX", query(t, h, q("allowed.test.", dnsmessage.TypeMX)),
			summary{ID: 42, RCode: dnsmessage.RCodeSuccess, Qs: 1}},
		{"denied A", query(t, h, q("denied.test.", dnsmessage.TypeA)),
			summary{ID: 42, RCode: dnsmessage.RCodeNameError, Qs: 1}},
		{"denied AAAA", query(t, h, q("denied.test.", dnsmessage.TypeAAAA)),
			summary{ID: 42, RCode: dnsmessage.RCodeNameError, Qs: 1}},
		{"suffix of allowed", query(t, h, q("test.", dnsmessage.TypeA)),
			summary{ID: 42, RCode: dnsmessage.RCodeNameError, Qs: 1}},
		{"not a host name", query(t, h, q("allowed\\.test.", dnsmessage.TypeA)),
			summary{ID: 42, RCode: dnsmessage.RCodeNameError, Qs: 1}},
		{"class CHAOS", query(t, h, chaos),
			summary{ID: 42, RCode: dnsmessage.RCodeNotImplemented, Qs: 1}},
		{"opcode", query(t, dnsmessage.Header{ID: 42, OpCode: 5}, q("allowed.test.", dnsmessage.TypeA)),
			summary{ID: 42, RCode: dnsmessage.RCodeNotImplemented}},
		{"no question", query(t, h),
			summary{ID: 42, RCode: dnsmessage.RCodeFormatError}},
		{"two questions", query(t, h, q("allowed.test.", dnsmessage.TypeA), q("second.test.", dnsmessage.TypeA)),
			summary{ID: 42, RCode: dnsmessage.RCodeFormatError}},
	}
	d := newTestDNS(t, "", "allowed.test", "second.test")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := d.Answer(tt.msg)
			if err != nil {
				t.Fatalf("Answer: %v", err)
			}
			if diff := cmp.Diff(tt.want, summarize(t, resp)); diff != "" {
				t.Errorf("Answer(%s) (-want +got):\n%s", tt.name, diff)
			}
		})
	}

	for name, want := range map[string]string{"198.18.0.1": "allowed.test", "198.18.0.2": "second.test", "198.18.0.3": ""} {
		if got := d.NameFor(netip.MustParseAddr(name)); got != want {
			t.Errorf("NameFor(%s) = %q, want %q", name, got, want)
		}
	}
}

func TestAnswerDrops(t *testing.T) {
	d := newTestDNS(t, "", "allowed.test")
	resp := query(t, dnsmessage.Header{ID: 1, Response: true}, q("allowed.test.", dnsmessage.TypeA))
	for name, msg := range map[string][]byte{
		"empty":    nil,
		"short":    {1, 2, 3},
		"response": resp,
	} {
		if got, err := d.Answer(msg); err == nil {
			t.Errorf("Answer(%s) = %x, nil; want an error (no reply)", name, got)
		}
	}
}

func TestPoolExhausted(t *testing.T) {
	// A /30 holds two usable addresses once the first and last are skipped.
	d := newTestDNS(t, "10.9.0.0/30", "a.test", "b.test", "c.test")
	h := dnsmessage.Header{ID: 7}
	var got []summary
	for _, name := range []string{"a.test.", "b.test.", "c.test.", "a.test."} {
		resp, err := d.Answer(query(t, h, q(name, dnsmessage.TypeA)))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, summarize(t, resp))
	}
	want := []summary{
		{ID: 7, Qs: 1, Answers: []string{"a.test. 10.9.0.1"}},
		{ID: 7, Qs: 1, Answers: []string{"b.test. 10.9.0.2"}},
		{ID: 7, Qs: 1, RCode: dnsmessage.RCodeServerFailure},
		{ID: 7, Qs: 1, Answers: []string{"a.test. 10.9.0.1"}}, // still known
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answers from a full pool (-want +got):\n%s", diff)
	}
}

func TestNewDNSPool(t *testing.T) {
	for _, pool := range []string{"fd00::/64", "10.0.0.0/31", "10.0.0.1/32"} {
		if _, err := NewDNS(netip.MustParsePrefix(pool), nil); err == nil {
			t.Errorf("NewDNS(%s) = nil error, want error", pool)
		}
	}
}

func TestHostName(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"api.example.com.", "api.example.com", true},
		{"API.Example.COM", "api.example.com", true},
		{"_dmarc.x-y.test.", "_dmarc.x-y.test", true},
		{".", "", false},
		{"a..b.", "", false},
		{"a b.test.", "", false},
		{"a\x00b.test.", "", false},
		{"é.test.", "", false},
		{"\u212aubernetes.io.", "", false}, // Kelvin sign, which strings.ToLower folds to "k"
		{"a\\.b.", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := hostName(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("hostName(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// FuzzAnswer checks that any input gets either no reply or a well-formed
// reply to the same ID, and that only allowed names get addresses.
func FuzzAnswer(f *testing.F) {
	h := dnsmessage.Header{ID: 9, RecursionDesired: true}
	f.Add(query(f, h, q("allowed.test.", dnsmessage.TypeA)))
	f.Add(query(f, h, q("denied.test.", dnsmessage.TypeAAAA)))
	f.Add(query(f, h, q("allowed.test.", dnsmessage.TypeA), q("x.", dnsmessage.TypeTXT)))
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c})
	f.Fuzz(func(t *testing.T, msg []byte) {
		d := newTestDNS(t, "", "allowed.test")
		resp, err := d.Answer(msg)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		rh, err := p.Start(resp)
		if err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if qh, _ := new(dnsmessage.Parser).Start(msg); qh.ID != rh.ID {
			t.Errorf("reply ID = %d, query ID = %d", rh.ID, qh.ID)
		}
		p.SkipAllQuestions()
		answers, err := p.AllAnswers()
		if err != nil {
			t.Fatalf("reply answers do not parse: %v", err)
		}
		for _, a := range answers {
			if name, _ := hostName(a.Header.Name.String()); name != "allowed.test" {
				t.Errorf("answered %q, which is not allowed", a.Header.Name)
			}
		}
	})
}
