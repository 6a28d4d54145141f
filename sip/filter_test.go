package sip

import (
	"net"
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
