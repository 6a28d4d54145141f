package sip

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func udpProps(local net.Addr, ip string, port int) sip.TransportReadProps {
	return sip.TransportReadProps{Transport: "UDP", LocalAddr: local, RemoteAddr: &net.UDPAddr{IP: net.ParseIP(ip), Port: port}}
}

func TestFilterRatePerSourceIP(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	f := NewSourceFilter(FilterConfig{Rate: 10, Burst: 5, Now: clk.now})
	data := []byte("REGISTER sip:x SIP/2.0\r\n\r\n")
	passed := 0
	// Many ports of one host are one source.
	for port := 1000; port < 1100; port++ {
		out, err := f.Filter(udpProps(nil, "192.0.2.1", port), data)
		if err != nil {
			t.Fatalf("the filter must never return an error: %v", err)
		}
		if out != nil {
			passed++
		}
	}
	if passed != 5 {
		t.Fatalf("passed %d of 100 at once, want the burst 5", passed)
	}
	// Another host has its own bucket.
	if out, _ := f.Filter(udpProps(nil, "192.0.2.2", 5060), data); out == nil {
		t.Fatal("a second source was throttled by the first")
	}
	// The bucket refills at the rate.
	clk.t = clk.t.Add(200 * time.Millisecond)
	if out, _ := f.Filter(udpProps(nil, "192.0.2.1", 1000), data); out == nil {
		t.Fatal("the bucket did not refill")
	}
	st := f.Stats()
	if st.Dropped != 95 || st.Passed != 7 || st.Sources != 2 || st.Ports != 6 {
		t.Fatalf("stats %+v", st)
	}
	// Streams and unknown addresses pass untouched.
	for i := 0; i < 100; i++ {
		p := udpProps(nil, "192.0.2.1", 1000)
		p.Transport = "TCP"
		if out, _ := f.Filter(p, data); out == nil {
			t.Fatal("a TCP chunk was dropped")
		}
	}
	off := NewSourceFilter(FilterConfig{Rate: -1})
	for i := 0; i < 1000; i++ {
		if out, _ := off.Filter(udpProps(nil, "192.0.2.1", 1), data); out == nil {
			t.Fatal("a disabled filter dropped")
		}
	}
}

func TestFilterBoundedTables(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	f := NewSourceFilter(FilterConfig{Rate: 1000, MaxSources: 100, IdleAfter: time.Minute, Now: clk.now})
	data := []byte("x")
	for i := 0; i < 1000; i++ {
		ip := net.IPv4(10, 0, byte(i/256), byte(i%256)).String()
		if _, err := f.Filter(udpProps(nil, ip, 5060), data); err != nil {
			t.Fatal(err)
		}
	}
	st := f.Stats()
	if st.Sources != 100 || st.Ports != 100 || st.OverflowDrops != 900 {
		t.Fatalf("tables not capped: %+v", st)
	}
	// Idle sources are evicted and new ones admitted again.
	clk.t = clk.t.Add(2 * time.Minute)
	if out, _ := f.Filter(udpProps(nil, "198.51.100.1", 5060), data); out == nil {
		t.Fatal("a new source was refused after the others went idle")
	}
	if st := f.Stats(); st.Sources != 1 || st.Ports != 1 {
		t.Fatalf("idle entries not evicted: %+v", st)
	}
}

func TestFilterPrunesUDPPool(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	tl := sip.NewTransportLayer(net.DefaultResolver, sip.NewParser(), nil)
	defer tl.Close()
	pool := tl.Pool("udp")
	listener := &sip.UDPConnection{PacketConn: pc, PacketAddr: pc.LocalAddr().String(), Listener: true}
	pool.Add(listener.PacketAddr, listener)

	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	f := NewSourceFilter(FilterConfig{Rate: 1000, Burst: 1000, IdleAfter: time.Minute, Now: clk.now})
	f.attach(pool)
	for port := 2000; port < 2100; port++ {
		p := udpProps(pc.LocalAddr(), "127.0.0.2", port)
		f.Filter(p, []byte("x"))
		pool.Add(p.RemoteAddr.String(), listener) // what sipgo's reader does next
	}
	if n := pool.Size(); n != 101 {
		t.Fatalf("pool size %d, want 101", n)
	}
	clk.t = clk.t.Add(2 * time.Minute)
	// A returning source gets its entry back from the filter itself (sipgo's
	// reader skips the add when the source repeats).
	f.Filter(udpProps(pc.LocalAddr(), "127.0.0.2", 2000), []byte("x"))
	if c := pool.Get("127.0.0.2:2000"); c != listener {
		t.Fatalf("entry of a returning source not re-added: %v", c)
	}
	st := f.Stats()
	if st.PoolSize != 2 || st.PoolPruned != 100 {
		t.Fatalf("pool not pruned: %+v", st)
	}
	if c := pool.Get(listener.PacketAddr); c != listener {
		t.Fatal("the listener's own entry was pruned")
	}
}

// scannerAgents is the drop list of the tests: the README's suggestion.
var scannerAgents = []string{"friendly-scanner", "sipvicious", "sipcli", "VaxSIPUserAgent", "sundayddr", "iWar", "SIPScan", "pplsip"}

func TestFilterDropsScannerUserAgents(t *testing.T) {
	for _, c := range []struct {
		name string
		raw  string
		drop bool
	}{
		{"svwar's default", registerText("User-Agent: friendly-scanner"), true},
		{"another case, no space after the colon", registerText("user-agent:FRIENDLY-SCANNER"), true},
		{"spaces before the colon", registerText("User-Agent  : sipvicious 0.3.4"), true},
		{"a substring anywhere in the value", registerText("User-Agent: Mozilla/5.0 (compatible; SIPScan/1.0)"), true},
		{"folded onto a continuation line", registerText("User-Agent: x", " pplsip"), true},
		{"a real phone", registerText("User-Agent: Linphone/5.2.0 (belle-sip/5.2.0)"), false},
		{"no User-Agent at all", registerText(), false},
		{"the name only in another header", registerText(`From: "friendly-scanner" <sip:alice@example.com>;tag=1`), false},
		{"the name only in the body", strings.Replace(registerText(), "\r\n\r\n", "\r\n\r\nUser-Agent: friendly-scanner\r\n", 1), false},
		{"a header whose name only starts alike", registerText("User-Agent-X: friendly-scanner"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := NewSourceFilter(FilterConfig{Rate: -1, DropUserAgents: scannerAgents})
			out, err := f.Filter(udpProps(nil, "192.0.2.1", 5060), []byte(c.raw))
			if err != nil {
				t.Fatalf("the filter must never return an error: %v", err)
			}
			if (out == nil) != c.drop {
				t.Fatalf("dropped %v, want %v:\n%s", out == nil, c.drop, c.raw)
			}
			if st := f.Stats(); (st.UserAgentDrops == 1) != c.drop || st.UnsafeDrops != 0 {
				t.Fatalf("stats %+v", st)
			}
			// After parsing (the stream transports), the same decision.
			if msg, err := sip.ParseMessage([]byte(c.raw)); err == nil {
				req := msg.(*sip.Request)
				req.SetTransport("TCP")
				if admitted := f.admit(req); admitted == c.drop {
					t.Fatalf("after parsing: admitted %v, want %v", admitted, !c.drop)
				}
			}
		})
	}
	t.Run("an empty list drops nothing", func(t *testing.T) {
		f := NewSourceFilter(FilterConfig{Rate: -1, DropUserAgents: []string{"", "  "}})
		if out, _ := f.Filter(udpProps(nil, "192.0.2.1", 5060), []byte(registerText("User-Agent: friendly-scanner"))); out == nil {
			t.Fatal("dropped with no usable entry")
		}
	})
	t.Run("a dropped scanner takes no place in the source table", func(t *testing.T) {
		f := NewSourceFilter(FilterConfig{Rate: 10, MaxSources: 1, DropUserAgents: scannerAgents})
		f.Filter(udpProps(nil, "192.0.2.66", 5060), []byte(registerText("User-Agent: friendly-scanner")))
		if out, _ := f.Filter(udpProps(nil, "192.0.2.1", 5060), []byte(registerText())); out == nil {
			t.Fatal("a phone was refused: the scanner filled the table")
		}
		if st := f.Stats(); st.Sources != 1 || st.Passed != 1 || st.UserAgentDrops != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// unsafeEchoCases put a control character into each header that sipgo
// copies into responses, and into some it does not.
var unsafeEchoCases = []struct {
	name string
	raw  string
	drop bool
}{
	{"bare LF in Call-ID", registerText("Call-ID: abc\nX-Injected: yes"), true},
	{"bare LF in the compact Call-ID", registerText("-Call-ID", "i: abc\nX-Injected: yes"), true},
	{"bare LF in a From parameter", registerText("From: <sip:alice@example.com>;tag=1\nX-Injected: yes"), true},
	{"bare LF in the From display name", registerText("From: \"a\nX-Injected: yes\" <sip:alice@example.com>;tag=1"), true},
	{"bare LF in To", registerText("To: <sip:alice@example.com>;x=1\nX-Injected: yes"), true},
	{"bare LF in Via", registerText("Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1;x=\"a\nX-Injected: yes\""), true},
	{"bare LF in a folded Via line", registerText("Via: SIP/2.0/UDP 192.0.2.10:5060", " ;branch=z9hG4bK-1\nX-Injected: yes"), true},
	{"bare LF in CSeq", registerText("CSeq: 2 REGISTER\nX-Injected: yes"), true},
	{"bare LF in Record-Route", registerText("Record-Route: <sip:p.example.com;lr>\nX-Injected: yes"), true},
	{"bare LF in Timestamp", registerText("Timestamp: 1\nX-Injected: yes"), true},
	{"NUL in From", registerText("From: <sip:alice@example.com>;tag=1\x00"), true},
	{"DEL in To", registerText("To: <sip:alice@example.com>;x=\x7f"), true},
	{"bare LF in the SIP version", strings.Replace(registerText(), "SIP/2.0\r\n", "SIP/2.0\nX-Injected: yes\r\n", 1), true},
	{"a tab in Via is fine", registerText("Via: SIP/2.0/UDP\t192.0.2.10:5060;branch=z9hG4bK-1"), false},
	// Not echoed: the registrar answers these with 400 itself (testdata/sip/33, 37).
	{"bare LF in Require", registerText("Require: x\nX-Injected: yes"), false},
	{"bare LF in User-Agent", registerText("User-Agent: phone\nX-Injected: yes"), false},
	{"a clean REGISTER", registerText(), false},
	{"SIPp's REGISTER", sippRegister, false},
}

func TestFilterDropsUnsafeEchoedHeaders(t *testing.T) {
	for _, c := range unsafeEchoCases {
		t.Run(c.name, func(t *testing.T) {
			f := NewSourceFilter(FilterConfig{Rate: -1})
			out, err := f.Filter(udpProps(nil, "192.0.2.1", 5060), []byte(c.raw))
			if err != nil {
				t.Fatalf("the filter must never return an error: %v", err)
			}
			if (out == nil) != c.drop {
				t.Fatalf("before parsing: dropped %v, want %v:\n%q", out == nil, c.drop, c.raw)
			}
			msg, err := sip.ParseMessage([]byte(c.raw))
			if err != nil {
				return // sipgo refuses it anyway
			}
			req := msg.(*sip.Request)
			// After parsing (every transport) the check looks at the
			// headers as sipgo will render them: what it admits must be
			// safe to answer, and a clean request is admitted.
			for _, tr := range []string{"UDP", "TCP"} {
				req.SetTransport(tr)
				admitted := f.admit(req)
				if !admitted && !c.drop {
					t.Fatalf("after parsing (%s): a clean request was dropped", tr)
				}
				if admitted {
					checkEchoSafe(t, req)
				}
			}
			if st := f.Stats(); st.UnsafeDrops == 0 && c.drop {
				t.Fatalf("not counted: %+v", st)
			}
		})
	}
}

// checkEchoSafe fails if an answer to req would carry a control character
// anywhere but in its CRLF line ends.
func checkEchoSafe(t testing.TB, req *sip.Request) {
	t.Helper()
	method := req.Method
	defer func() { req.Method = method }()
	// Record-Route is copied only into a 2xx to another method than
	// REGISTER: answer the request as an OPTIONS too.
	for _, m := range []sip.RequestMethod{method, sip.OPTIONS} {
		req.Method = m
		for _, status := range []int{100, 200, 400} {
			res := sip.NewResponseFromRequest(req, status, "Reason", nil)
			text := strings.TrimSuffix(res.String(), "\r\n\r\n")
			for _, line := range strings.Split(text, "\r\n") {
				if hasCTL(line) {
					t.Fatalf("a %d to this %s carries a control character in %q", status, m, line)
				}
			}
		}
	}
}

// FuzzInspect checks the filter's promise: whatever it lets through, before
// or after parsing, can be answered without a control character in the
// answer's headers; and it never panics.
func FuzzInspect(f *testing.F) {
	for _, c := range unsafeEchoCases {
		f.Add(c.raw)
	}
	f.Add(registerText("User-Agent: friendly-scanner"))
	f.Add("OPTIONS sip:example.com SIP/2.0\r\nRecord-Route: <sip:p;lr>\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
	agents := newUserAgentList(scannerAgents)
	f.Fuzz(func(t *testing.T, raw string) {
		before := inspectRaw([]byte(raw), agents)
		msg, err := sip.ParseMessage([]byte(raw))
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		after := inspectRequest(req, agents, true)
		// What the raw check admits over UDP may also be answered by sipgo
		// itself (a stateless 400): it must be safe on its own.
		if before == admit || after == admit {
			checkEchoSafe(t, req)
		}
	})
}
