package sip

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// registerBaseHeaders are the headers of a plain REGISTER; registerText replaces them by
// name and drops those given as "-Name".
var registerBaseHeaders = []string{
	"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---a7f1;rport",
	"Max-Forwards: 70",
	"To: <sip:alice@example.com>",
	"From: <sip:alice@example.com>;tag=4f3a2b1c",
	"Call-ID: 8c1d9e2f@192.0.2.10",
	"CSeq: 2 REGISTER",
}

// registerText writes a REGISTER as raw SIP text: registerBaseHeaders, each replaced in
// place by the first line of lines with its name (or removed by "-Name"),
// then the remaining lines in order.
func registerText(lines ...string) string {
	name := func(l string) string {
		n, _, _ := strings.Cut(strings.TrimPrefix(l, "-"), ":")
		return strings.ToLower(strings.TrimSpace(n))
	}
	base := map[string]bool{}
	for _, b := range registerBaseHeaders {
		base[name(b)] = true
	}
	override := map[string]string{}
	var extra []string
	for _, l := range lines {
		if n := name(l); base[n] {
			if _, dup := override[n]; !dup {
				override[n] = l
				continue
			}
		}
		extra = append(extra, l)
	}
	var sb strings.Builder
	sb.WriteString("REGISTER sip:example.com SIP/2.0\r\n")
	for _, b := range registerBaseHeaders {
		l, ok := override[name(b)]
		if !ok {
			l = b
		}
		if !strings.HasPrefix(l, "-") {
			sb.WriteString(l + "\r\n")
		}
	}
	for _, l := range extra {
		sb.WriteString(l + "\r\n")
	}
	sb.WriteString("Content-Length: 0\r\n\r\n")
	return sb.String()
}

// parseSIPRequest parses raw SIP text with sipgo, as the server's transport does.
func parseSIPRequest(tb testing.TB, raw string) *sip.Request {
	tb.Helper()
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		tb.Fatalf("sipgo cannot parse the message: %v\n%s", err, raw)
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		tb.Fatalf("not a request: %T", msg)
	}
	return req
}

// mustParseRegister runs ParseRegister on a REGISTER with the given header lines
// and fails on a parseRefusal.
func mustParseRegister(tb testing.TB, lines ...string) *RegisterRequest {
	tb.Helper()
	rr, rerr := ParseRegister(parseSIPRequest(tb, registerText(lines...)))
	if rerr != nil {
		tb.Fatalf("refused: %v", rerr)
	}
	return rr
}

// parseRefusal runs ParseRegister and returns its parseRefusal, failing on success.
func parseRefusal(tb testing.TB, lines ...string) *RegisterError {
	tb.Helper()
	rr, rerr := ParseRegister(parseSIPRequest(tb, registerText(lines...)))
	if rerr == nil {
		tb.Fatalf("accepted, want a parseRefusal: %+v", rr)
	}
	if rr != nil {
		tb.Fatalf("a parseRefusal came with a request: %+v", rr)
	}
	return rerr
}

// sippRegister is a REGISTER as SIPp's uac scenarios send it.
const sippRegister = "REGISTER sip:example.com SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 192.0.2.10:5061;branch=z9hG4bK-12345-1-0\r\n" +
	"From: <sip:alice@example.com>;tag=12345SIPpTag001\r\n" +
	"To: <sip:alice@example.com>\r\n" +
	"Call-ID: 1-12345@192.0.2.10\r\n" +
	"CSeq: 1 REGISTER\r\n" +
	"Contact: sip:alice@192.0.2.10:5061\r\n" +
	"Max-Forwards: 70\r\n" +
	"Subject: Performance Test\r\n" +
	"Expires: 3600\r\n" +
	"User-Agent: SIPp/Linux\r\n" +
	"Content-Length: 0\r\n\r\n"

func TestParseRegisterReadsATypicalRegister(t *testing.T) {
	rr, rerr := ParseRegister(parseSIPRequest(t, sippRegister))
	if rerr != nil {
		t.Fatal(rerr)
	}
	want := &RegisterRequest{
		AoR:           "sip:alice@example.com",
		AoRUser:       "alice",
		AoRDomain:     "example.com",
		Contacts:      []ContactSpec{{URI: "sip:alice@192.0.2.10:5061", Key: "sip:alice@192.0.2.10:5061", Expires: -1, Q: -1}},
		ExpiresHeader: 3600,
		CallID:        "1-12345@192.0.2.10",
		CSeq:          1,
		UserAgent:     "SIPp/Linux",
	}
	if !reflect.DeepEqual(rr, want) {
		t.Fatalf("got  %+v\nwant %+v", rr, want)
	}
}

func TestParseRegisterNormalisesContactParameters(t *testing.T) {
	tests := []struct {
		name    string
		contact string
		want    ContactSpec
	}{
		{"spaces around parameters and an upper-case name are read",
			"Contact: <sip:a@192.0.2.1> ; expires = 60 ;Q=0.5",
			ContactSpec{URI: "sip:a@192.0.2.1", Key: "sip:a@192.0.2.1:5060", Expires: 60, Q: 500}},
		{"the compact form m carries instance and reg-id",
			`m: <sip:a@192.0.2.1;transport=tcp;ob>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>";reg-id=1`,
			ContactSpec{URI: "sip:a@192.0.2.1;transport=tcp;ob", Key: "sip:a@192.0.2.1:5060;transport=tcp", Expires: -1, Q: -1,
				Instance: "<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>", RegID: 1}},
		{"an unquoted instance is accepted as is",
			"Contact: <sip:a@192.0.2.1>;+sip.instance=<urn:uuid:1>;reg-id=2",
			ContactSpec{URI: "sip:a@192.0.2.1", Key: "sip:a@192.0.2.1:5060", Expires: -1, Q: -1, Instance: "<urn:uuid:1>", RegID: 2}},
		{"a reg-id without instance is ignored",
			"Contact: <sip:a@192.0.2.1>;reg-id=1",
			ContactSpec{URI: "sip:a@192.0.2.1", Key: "sip:a@192.0.2.1:5060", Expires: -1, Q: -1}},
		{"an IPv6 host keeps its brackets and gets a canonical key",
			"Contact: <sip:alice@[2001:DB8:0::1]:5062;Transport=TCP>;expires=120",
			ContactSpec{URI: "sip:alice@[2001:DB8:0::1]:5062;Transport=TCP", Key: "sip:alice@[2001:db8::1]:5062;transport=tcp", Expires: 120, Q: -1}},
		{"the key decodes the user, lower-cases the host and makes the port explicit",
			"Contact: <sip:%61lice@EXAMPLE.net;rinstance=77;maddr=192.0.2.9;user=ip>",
			ContactSpec{URI: "sip:%61lice@EXAMPLE.net;rinstance=77;maddr=192.0.2.9;user=ip", Key: "sip:alice@example.net:5060;maddr=192.0.2.9;user=ip", Expires: -1, Q: -1}},
		{"sips defaults to 5061",
			"Contact: <sips:bob@example.net>",
			ContactSpec{URI: "sips:bob@example.net", Key: "sips:bob@example.net:5061", Expires: -1, Q: -1}},
		{"transport=tls defaults to 5061",
			"Contact: <sip:bob@example.net;transport=TLS>",
			ContactSpec{URI: "sip:bob@example.net;transport=TLS", Key: "sip:bob@example.net:5061;transport=tls", Expires: -1, Q: -1}},
		{"a WebSocket client's .invalid host is kept",
			"Contact: <sip:k2j4h5@df7jal23ls0d.invalid;transport=ws>;expires=600",
			ContactSpec{URI: "sip:k2j4h5@df7jal23ls0d.invalid;transport=ws", Key: "sip:k2j4h5@df7jal23ls0d.invalid:5060;transport=ws", Expires: 600, Q: -1}},
		{"q=1 and q=0 are the bounds",
			"Contact: <sip:a@192.0.2.1>;q=1.000",
			ContactSpec{URI: "sip:a@192.0.2.1", Key: "sip:a@192.0.2.1:5060", Expires: -1, Q: 1000}},
		{"q with three decimals",
			"Contact: <sip:a@192.0.2.1>;q=0.125;expires=0",
			ContactSpec{URI: "sip:a@192.0.2.1", Key: "sip:a@192.0.2.1:5060", Expires: 0, Q: 125}},
		{"a huge expires is clamped, not refused",
			"Contact: <sip:a@192.0.2.1>;expires=99999999999999999999",
			ContactSpec{URI: "sip:a@192.0.2.1", Key: "sip:a@192.0.2.1:5060", Expires: maxDelta, Q: -1}},
		{"a contact without user part",
			"Contact: <sip:192.0.2.1:5080>",
			ContactSpec{URI: "sip:192.0.2.1:5080", Key: "sip:192.0.2.1:5080", Expires: -1, Q: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := mustParseRegister(t, tt.contact)
			if len(rr.Contacts) != 1 {
				t.Fatalf("got %d contacts, want 1", len(rr.Contacts))
			}
			if got := rr.Contacts[0]; got != tt.want {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseRegisterSplitsContactLists(t *testing.T) {
	rr := mustParseRegister(t,
		`Contact: "Desk, Office" <sip:a@192.0.2.1>;expires=0, <sip:b@192.0.2.2>;expires=3600`,
		"m: <sip:c@192.0.2.3>;q=0.1",
		"Contact: <sip:d@192.0.2.4>, <sip:e@192.0.2.5>;expires=30",
	)
	var got []string
	for _, c := range rr.Contacts {
		got = append(got, fmt.Sprintf("%s/%d/%d", c.URI, c.Expires, c.Q))
	}
	want := []string{
		"sip:a@192.0.2.1/0/-1",
		"sip:b@192.0.2.2/3600/-1",
		"sip:c@192.0.2.3/-1/100",
		"sip:d@192.0.2.4/-1/-1",
		"sip:e@192.0.2.5/30/-1",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestParseRegisterEquivalentContactsShareAKey(t *testing.T) {
	key := func(contact string) string {
		t.Helper()
		return mustParseRegister(t, "Contact: "+contact).Contacts[0].Key
	}
	same := [][2]string{
		{"<sip:alice@example.net>", "<sip:%61lice@EXAMPLE.NET:5060>"},
		{"<sip:alice@example.net;transport=UDP>", "<sip:alice@example.net;TRANSPORT=udp;rinstance=9>"},
		{"<sip:alice@example.net;maddr=x.example;ttl=1>", "<sip:alice@example.net;ttl=1;maddr=X.example>"},
		{"<sip:alice@[::1]>", "<sip:alice@[0:0::1]:5060>"},
		{"<sips:alice@example.net>", "<sips:alice@example.net:5061>"},
	}
	for _, p := range same {
		if a, b := key(p[0]), key(p[1]); a != b {
			t.Errorf("%s and %s: keys %q and %q differ", p[0], p[1], a, b)
		}
	}
	different := [][2]string{
		{"<sip:alice@example.net>", "<sip:Alice@example.net>"},
		{"<sip:alice@example.net>", "<sips:alice@example.net>"},
		{"<sip:alice@example.net>", "<sip:alice@example.net;transport=tcp>"},
		{"<sip:alice@example.net>", "<sip:alice@example.net:5070>"},
		{"<sip:alice@example.net>", "<sip:alice@example.net;user=phone>"},
		{"<sip:a%3Ab@example.net>", "<sip:a:b@example.net>"},
	}
	for _, p := range different {
		if a, b := key(p[0]), key(p[1]); a == b {
			t.Errorf("%s and %s share key %q", p[0], p[1], a)
		}
	}
}

func TestParseRegisterCanonicalisesTheAoR(t *testing.T) {
	tests := []struct {
		name, to, aor, user, domain string
	}{
		{"a percent-encoded user is decoded", "To: <sip:%61li%63e@example.com>", "sip:alice@example.com", "alice", "example.com"},
		{"user=phone, other URI parameters, port and header params are dropped",
			`To: "Alice" <sip:+15551234567@Example.COM:5070;user=phone;foo=bar>;tag=abc`,
			"sip:+15551234567@example.com", "+15551234567", "example.com"},
		{"a sips To maps to the sip AoR", "To: <sips:alice@example.com>", "sip:alice@example.com", "alice", "example.com"},
		{"the compact form t is read", "t: sip:alice@example.com", "sip:alice@example.com", "alice", "example.com"},
		{"user case is kept", "To: <sip:Alice@example.com>", "sip:Alice@example.com", "Alice", "example.com"},
		{"an IPv6 domain keeps its brackets", "To: <sip:alice@[2001:DB8::1]>", "sip:alice@[2001:db8::1]", "alice", "[2001:db8::1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := mustParseRegister(t, tt.to, "Contact: <sip:a@192.0.2.1>")
			if rr.AoR != tt.aor || rr.AoRUser != tt.user || rr.AoRDomain != tt.domain {
				t.Fatalf("got %q %q %q, want %q %q %q", rr.AoR, rr.AoRUser, rr.AoRDomain, tt.aor, tt.user, tt.domain)
			}
		})
	}
}

func TestParseRegisterContactWildcard(t *testing.T) {
	t.Run("alone with Expires: 0 is accepted", func(t *testing.T) {
		rr := mustParseRegister(t, "Contact: *", "Expires: 0")
		if !rr.Wildcard || len(rr.Contacts) != 0 || rr.ExpiresHeader != 0 {
			t.Fatalf("got %+v", rr)
		}
	})
	t.Run("alone with expires=0 on it and no Expires header is accepted", func(t *testing.T) {
		if rr := mustParseRegister(t, "Contact: *;expires=0"); !rr.Wildcard {
			t.Fatalf("got %+v", rr)
		}
	})
	refused := []struct {
		name  string
		lines []string
	}{
		{"with another Contact in the same header", []string{"Contact: *, <sip:a@192.0.2.1>", "Expires: 0"}},
		{"with another Contact header", []string{"Contact: <sip:a@192.0.2.1>", "Contact: *", "Expires: 0"}},
		{"twice", []string{"Contact: *", "Contact: *", "Expires: 0"}},
		{"with Expires: 300", []string{"Contact: *", "Expires: 300"}},
		{"without any expiration", []string{"Contact: *"}},
		{"with expires=300 on it", []string{"Contact: *;expires=300", "Expires: 0"}},
		{"with expires=0 on it but Expires: 60", []string{"Contact: *;expires=0", "Expires: 60"}},
	}
	for _, tt := range refused {
		t.Run("refused "+tt.name, func(t *testing.T) {
			rerr := parseRefusal(t, tt.lines...)
			if rerr.Status != 400 || rerr.Reason != "Contact: * only alone with Expires: 0" {
				t.Fatalf("got %v", rerr)
			}
		})
	}
}

func TestParseRegisterRequire(t *testing.T) {
	t.Run("supported tags pass and are lower-cased", func(t *testing.T) {
		rr := mustParseRegister(t, "Require: Path, outbound", "Supported: path, GRUU", "k: outbound", "Contact: <sip:a@192.0.2.1>")
		if !reflect.DeepEqual(rr.Require, []string{"path", "outbound"}) {
			t.Errorf("Require = %q", rr.Require)
		}
		if !reflect.DeepEqual(rr.Supported, []string{"path", "gruu", "outbound"}) {
			t.Errorf("Supported = %q", rr.Supported)
		}
	})
	tests := []struct {
		name, require, unsupported string
	}{
		{"one unknown tag", "Require: foo", "foo"},
		{"unknown tags among known ones, each once, as spelled", "Require: path, Foo, bar, foo", "Foo, bar"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" gets 420 with Unsupported", func(t *testing.T) {
			rerr := parseRefusal(t, tt.require, "Contact: <sip:a@192.0.2.1>")
			if rerr.Status != 420 || rerr.ReasonPhrase() != "Bad Extension" {
				t.Fatalf("got %v", rerr)
			}
			if got := rerr.Headers(); !reflect.DeepEqual(got, [][2]string{{"Unsupported", tt.unsupported}}) {
				t.Fatalf("headers %q", got)
			}
		})
	}
	t.Run("420 comes before Contact checks (RFC 3261 10.3 step 2 precedes 6)", func(t *testing.T) {
		if rerr := parseRefusal(t, "Require: foo", "Contact: <tel:+1555>"); rerr.Status != 420 {
			t.Fatalf("got %v", rerr)
		}
	})
}

func TestParseRegisterRefusesMalformedRequests(t *testing.T) {
	tests := []struct {
		name   string
		lines  []string
		reason string
	}{
		{"without Call-ID", []string{"-Call-ID"}, "Missing or malformed Call-ID"},
		{"without To", []string{"-To"}, "Missing or malformed To"},
		{"without From", []string{"-From"}, "Missing or malformed From"},
		{"without CSeq", []string{"-CSeq"}, "Missing or malformed CSeq"},
		{"with a CSeq method other than REGISTER", []string{"CSeq: 2 INVITE"}, "CSeq method is not REGISTER"},
		{"with a tel: To", []string{"To: <tel:+15551234567>"}, "To is not a SIP or SIPS URI"},
		{"with a To without user", []string{"To: <sip:example.com>"}, "To has no user part"},
		{"with a bad escape in the To user", []string{"To: <sip:al%zzice@example.com>"}, "Malformed To user"},
		{"with an escaped @ in the To user", []string{"To: <sip:a%40b@example.com>"}, "Malformed To user"},
		{"with an escaped control in the To user", []string{"To: <sip:a%0Db@example.com>"}, "Malformed To user"},
		{"with a bad To host", []string{"To: <sip:alice@exa$mple.com>"}, "Malformed To host"},
		{"with a tel: Contact", []string{"Contact: <tel:+15551234567>"}, "Contact is not a SIP or SIPS URI"},
		{"with a non-numeric Expires", []string{"Contact: <sip:a@192.0.2.1>", "Expires: soon"}, "Malformed Expires"},
		{"with a negative Expires", []string{"Contact: <sip:a@192.0.2.1>", "Expires: -5"}, "Malformed Expires"},
		{"with two Expires headers", []string{"Contact: <sip:a@192.0.2.1>", "Expires: 60", "Expires: 120"}, "Malformed Expires"},
		{"with a bad Contact host", []string{"Contact: <sip:a@bad host>"}, "Malformed Contact"},
		{"with a quote in the Contact user", []string{`Contact: <sip:a"b@192.0.2.1>`}, "Malformed Contact"},
		{"with a space in a Contact URI parameter", []string{"Contact: <sip:a@192.0.2.1;x=a b>"}, "Malformed Contact"},
		{"with a bad IPv6 Contact host", []string{"Contact: <sip:a@[2001:db8::zz]>"}, "Malformed Contact"},
		{"with a Contact port out of range", []string{"Contact: <sip:a@192.0.2.1:70000>"}, "Malformed Contact"},
		{"with a malformed Path", []string{"Contact: <sip:a@192.0.2.1>", "Path: <sip:p1.example.com;lr"}, "Malformed Path"},
		{"with a Path that is not a name-addr", []string{"Contact: <sip:a@192.0.2.1>", "Path: sip:p1.example.com;lr"}, "Malformed Path"},
		{"with a tel: Path", []string{"Contact: <sip:a@192.0.2.1>", "Path: <tel:+1555>"}, "Malformed Path"},
		// sipgo ends lines at CRLF only: a bare LF stays inside a value,
		// and must not reach a stored or echoed one.
		{"with a bare LF in Require (echoed in Unsupported)", []string{"Require: foo\nX-Evil: 1"}, "Malformed Require"},
		{"with a Require tag that is not a token", []string{"Require: foo bar"}, "Malformed Require"},
		{"with a bare LF in Supported", []string{"Supported: path\nX-Evil: 1"}, "Malformed Supported"},
		{"with a bare LF in Path (echoed in the 200)", []string{"Contact: <sip:a@192.0.2.1>", "Path: <sip:p1.example.com;lr>;x=\nX-Evil: 1"}, "Malformed Path"},
		{"with a bare LF in User-Agent", []string{"User-Agent: Phone\nX-Evil: 1"}, "Malformed User-Agent"},
		{"with a bare LF in Call-ID", []string{"Call-ID: abc\nX-Evil: 1"}, "Missing or malformed Call-ID"},
		{"with a space in Call-ID", []string{"Call-ID: abc def"}, "Missing or malformed Call-ID"},
	}
	bad := []string{
		"expires=abc", "expires=-1", `expires="60"`, "expires=1.5", "expires=", "expires",
		// sipgo keeps one value per exactly-spelled name (the last), so a
		// repeated parameter is only seen when spelled differently.
		"expires=60;Expires=70", "q=0.5; q=0.7",
		"q=1.5", "q=0.1234", "q=2", "q=abc", "q=", "q=.5", "q=1.001", "q=-0.1",
		"reg-id=0", "reg-id=abc", "reg-id=-1", "reg-id=99999999999", "reg-id=",
		`+sip.instance=""`, `+sip.instance="<urn:uuid:1;x>"`, `+sip.instance`, `+sip.instance="<urn:uuid:1>`,
	}
	for _, p := range bad {
		tests = append(tests, struct {
			name   string
			lines  []string
			reason string
		}{"with Contact parameter " + p, []string{`Contact: <sip:a@192.0.2.1>;` + p}, "Malformed Contact parameter"})
	}
	for _, tt := range tests {
		t.Run("refused "+tt.name, func(t *testing.T) {
			rerr := parseRefusal(t, tt.lines...)
			if rerr.Status != 400 || rerr.Reason != tt.reason {
				t.Fatalf("got %v (%q), want 400 %q", rerr, rerr.Reason, tt.reason)
			}
		})
	}
}

func TestParseRegisterBoundsContacts(t *testing.T) {
	contacts := func(n int) []string {
		var cs []string
		for i := range n {
			cs = append(cs, fmt.Sprintf("<sip:u%d@192.0.2.1>", i))
		}
		return cs
	}
	t.Run("32 Contacts are accepted", func(t *testing.T) {
		rr := mustParseRegister(t, "Contact: "+strings.Join(contacts(32), ", "))
		if len(rr.Contacts) != 32 {
			t.Fatalf("got %d", len(rr.Contacts))
		}
	})
	t.Run("33 Contacts over two headers are refused", func(t *testing.T) {
		cs := contacts(33)
		rerr := parseRefusal(t, "Contact: "+strings.Join(cs[:20], ", "), "m: "+strings.Join(cs[20:], ","))
		if rerr.Status != 400 || rerr.Reason != "Too many Contacts in request" {
			t.Fatalf("got %v", rerr)
		}
	})
}

func TestParseRegisterPath(t *testing.T) {
	rr := mustParseRegister(t,
		"Contact: <sip:a@192.0.2.1>",
		`Path: <sip:a,b@p1.example.com;lr>, "Edge, One" <sip:p2.example.com;lr>;x=1`,
		"Path: <sip:p3.example.com;lr;ob>",
	)
	want := []string{
		"<sip:a,b@p1.example.com;lr>",
		`"Edge, One" <sip:p2.example.com;lr>;x=1`,
		"<sip:p3.example.com;lr;ob>",
	}
	if !reflect.DeepEqual(rr.Path, want) {
		t.Fatalf("got  %q\nwant %q", rr.Path, want)
	}
	var many []string
	for i := range MaxPathEntries + 1 {
		many = append(many, fmt.Sprintf("<sip:p%d.example.com;lr>", i))
	}
	if rerr := parseRefusal(t, "Contact: <sip:a@192.0.2.1>", "Path: "+strings.Join(many, ",")); rerr.Reason != "Malformed Path" {
		t.Fatalf("%d Path entries: got %v", len(many), rerr)
	}
}

func TestParseRegisterFetchAndUserAgent(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes
	rr := mustParseRegister(t, "User-Agent:  "+long+" ")
	if len(rr.Contacts) != 0 || rr.Wildcard || rr.ExpiresHeader != -1 {
		t.Fatalf("a REGISTER without Contact is a fetch: %+v", rr)
	}
	if len(rr.UserAgent) != 256 || rr.UserAgent != strings.Repeat("é", 128) {
		t.Fatalf("User-Agent cut to %d bytes: %q", len(rr.UserAgent), rr.UserAgent)
	}
}

func TestRegisterErrorDescribesItself(t *testing.T) {
	e := &RegisterError{Status: 423, Header: map[string]string{"Min-Expires": "60", "A": "b"}}
	if e.Error() != "423 Interval Too Brief" {
		t.Errorf("Error() = %q", e.Error())
	}
	if got := e.Headers(); !reflect.DeepEqual(got, [][2]string{{"A", "b"}, {"Min-Expires", "60"}}) {
		t.Errorf("Headers() = %q", got)
	}
}

func TestSplitList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		ok   bool
	}{
		{"<sip:a>, <sip:b>", []string{"<sip:a>", "<sip:b>"}, true},
		{`"x,\"y" <sip:a,b>;p=1 ,, <sip:c>`, []string{`"x,\"y" <sip:a,b>;p=1`, "<sip:c>"}, true},
		{"<sip:a", nil, false},
		{"sip:a>", nil, false},
		{`"open <sip:a>`, nil, false},
		{"<<sip:a>>", nil, false},
	}
	for _, tt := range tests {
		got, ok := splitList(tt.in)
		if ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("splitList(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzParseRegister feeds raw messages through sipgo's parser and
// ParseRegister: no panic, and whatever is accepted is safe to store and
// echo.
func FuzzParseRegister(f *testing.F) {
	f.Add(sippRegister)
	f.Add(registerText("Contact: <sip:a@192.0.2.1> ; expires = 60 ;Q=0.5, <sips:b@[::1]:5061;transport=tls>;expires=0"))
	f.Add(registerText(`m: <sip:a@192.0.2.1;ob>;+sip.instance="<urn:uuid:1>";reg-id=1`, "Supported: path, outbound", "Path: <sip:p1;lr>, <sip:p2;lr>"))
	f.Add(registerText("Contact: *", "Expires: 0"))
	f.Add(registerText("To: <sip:%61lice@Example.COM;user=phone>;tag=1", "Require: foo, path"))
	f.Fuzz(func(t *testing.T, raw string) {
		msg, err := sip.ParseMessage([]byte(raw))
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		rr, rerr := ParseRegister(req)
		if rerr != nil {
			if rr != nil || rerr.Status < 400 || rerr.ReasonPhrase() == "" {
				t.Fatalf("bad parseRefusal %+v with %+v", rerr, rr)
			}
			for _, h := range rerr.Headers() {
				if strings.ContainsAny(h[1], "\r\n\x00") {
					t.Fatalf("unsafe header %q", h)
				}
			}
			return
		}
		if !strings.HasPrefix(rr.AoR, "sip:") || rr.AoR != "sip:"+rr.AoRUser+"@"+rr.AoRDomain {
			t.Fatalf("AoR %q", rr.AoR)
		}
		if rr.Wildcard && len(rr.Contacts) > 0 || len(rr.Contacts) > MaxContactsPerRequest {
			t.Fatalf("contacts %+v", rr)
		}
		for _, c := range rr.Contacts {
			if _, err := FormatContact(ContactOut{URI: c.URI, Expires: 1, Q: c.Q, Instance: c.Instance, RegID: c.RegID}); err != nil {
				t.Fatalf("accepted contact cannot be echoed: %+v: %v", c, err)
			}
			if c.Key == "" || strings.ContainsAny(c.Key, "\r\n\x00 ") {
				t.Fatalf("key %q", c.Key)
			}
		}
		values := append([]string{rr.CallID, rr.UserAgent}, rr.Path...)
		values = append(values, rr.Supported...)
		values = append(values, rr.Require...)
		for _, v := range values {
			if hasCTL(v) {
				t.Fatalf("control character in %q", v)
			}
		}
	})
}

func BenchmarkParseRegister(b *testing.B) {
	raw := []byte(sippRegister)
	b.Run("registrar", func(b *testing.B) {
		msg, err := sip.ParseMessage(raw)
		if err != nil {
			b.Fatal(err)
		}
		req := msg.(*sip.Request)
		b.ReportAllocs()
		for b.Loop() {
			if _, rerr := ParseRegister(req); rerr != nil {
				b.Fatal(rerr)
			}
		}
	})
	b.Run("with-sipgo-parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			msg, err := sip.ParseMessage(raw)
			if err != nil {
				b.Fatal(err)
			}
			if _, rerr := ParseRegister(msg.(*sip.Request)); rerr != nil {
				b.Fatal(rerr)
			}
		}
	})
}
