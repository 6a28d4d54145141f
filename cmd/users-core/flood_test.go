package main

import (
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/sip"
)

const (
	floodPorts    = 10_000 // distinct source ports
	floodPerPort  = 2      // REGISTERs from each: 20,000 in all
	floodBatch    = 500    // sockets open at once
	floodHosts    = 4      // flood source IPs 127.0.0.2 … 127.0.0.5
	floodDeadline = 20 * time.Second
	// floodHeapBound is what the flood may leave in the heap after it
	// settles. Measured: a few MiB with the filter on (see the log).
	floodHeapBound = 64 << 20
)

// flood sends floodPorts×floodPerPort requests of method (REGISTER or
// OPTIONS) to addr from floodPorts distinct source ports, at most
// floodBatch sockets at a time, spread over floodHosts loopback IPs (not
// 127.0.0.1, which the legitimate phone uses). Every other one carries a
// bogus Digest. It returns how many it sent.
func flood(addr, method string, stop <-chan struct{}) (sent, distinct int, err error) {
	seen := map[string]bool{}
	dst, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return 0, 0, err
	}
	deadline := time.Now().Add(floodDeadline)
	for port := 0; port < floodPorts && time.Now().Before(deadline); port += floodBatch {
		select {
		case <-stop:
			return sent, len(seen), nil
		default:
		}
		conns := make([]*net.UDPConn, 0, floodBatch)
		for i := 0; i < floodBatch; i++ {
			host := fmt.Sprintf("127.0.0.%d", 2+(port+i)%floodHosts)
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(host)})
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return sent, len(seen), err
			}
			seen[c.LocalAddr().String()] = true
			conns = append(conns, c)
		}
		for k := 0; k < floodPerPort; k++ {
			for i, c := range conns {
				n := (port+i)*floodPerPort + k
				if _, err := c.WriteToUDP(floodRequest(method, c.LocalAddr().String(), n), dst); err == nil {
					sent++
				}
			}
		}
		for _, c := range conns {
			c.Close()
		}
		time.Sleep(20 * time.Millisecond) // let the phone register during the flood
	}
	return sent, len(seen), nil
}

func floodRequest(method, src string, n int) []byte {
	auth := ""
	if n%2 == 1 {
		auth = fmt.Sprintf("Authorization: Digest username=\"mallory%d\", realm=\"%s\", nonce=\"bogus%d\", uri=\"sip:%s\", response=\"00000000000000000000000000000000\", algorithm=MD5\r\n", n%50, sipDomain, n, sipDomain)
	}
	return []byte(fmt.Sprintf("%s sip:%s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=z9hG4bK-flood-%d;rport\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:mallory%d@%s>;tag=f%d\r\n"+
		"To: <sip:mallory%d@%s>\r\n"+
		"Call-ID: flood-%d@%s\r\n"+
		"CSeq: 1 %s\r\n"+
		"Contact: <sip:mallory@%s>\r\n"+
		"Expires: 600\r\n%s"+
		"Content-Length: 0\r\n\r\n",
		method, sipDomain, src, n, n%50, sipDomain, n, n%50, sipDomain, n, src, method, src, auth))
}

func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// runFlood floods m while a legitimate phone registers over UDP from
// 127.0.0.1; it returns the phone's successes and the heap growth.
func runFlood(t *testing.T, m *Main, method string, phoneDuring bool) (distinct int, grown int64, st sip.FilterStats) {
	ok := 0
	addUser(t, m, "alice")
	p := newPhone(t, m, "UDP", "alice")
	if res := p.registerDigest(identity.SHA256, alicePassword, 600); res.StatusCode != 200 {
		t.Fatalf("before the flood: %d", res.StatusCode)
	}
	base := heapInuse()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent int
	var ferr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		sent, distinct, ferr = flood(sipAddr(t, m, "udp"), method, stop)
	}()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	start := time.Now()
	tries := 0
loop:
	for {
		select {
		case <-done:
			break loop
		default:
		}
		if !phoneDuring {
			<-done
			break
		}
		tries++
		if res := p.registerDigest(identity.SHA256, alicePassword, 600); res.StatusCode == 200 {
			ok++
		} else {
			t.Errorf("legitimate REGISTER during the flood: %d %s", res.StatusCode, res.Reason)
		}
		if time.Since(start) > floodDeadline+5*time.Second {
			close(stop)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	<-done
	if ferr != nil {
		t.Fatalf("flood: %v", ferr)
	}
	if phoneDuring && ok == 0 {
		t.Fatal("no legitimate registration succeeded during the flood")
	}
	// Settle: let in-flight handlers finish and collect.
	time.Sleep(2 * time.Second)
	after := heapInuse()
	grown = int64(after) - int64(base)
	st = m.SIPServer().FilterStats()
	t.Logf("flood: sent %d from %d distinct ip:ports in %v; phone %d/%d ok; heap in use %.1f MiB -> %.1f MiB (%+.1f MiB); filter %+v",
		sent, distinct, time.Since(start).Round(time.Millisecond), ok, tries,
		float64(base)/(1<<20), float64(after)/(1<<20), float64(grown)/(1<<20), st)
	if sent < floodPorts*floodPerPort/2 {
		t.Fatalf("the flood sent only %d", sent)
	}
	return distinct, grown, st
}

func TestSIPFloodBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("flood")
	}
	// A rate far below the default (2000/s, burst 4000, sized for a proxy
	// or SIPp in front of us), so that four flood hosts exceed it.
	m := sipMain(t, t.TempDir(), func(c *Config) { c.UsersCore.SIP.RatePerSource, c.UsersCore.SIP.RateBurst = 50, 100 })
	distinct, grown, st := runFlood(t, m, "REGISTER", true)
	if grown > floodHeapBound {
		t.Errorf("heap grew %d MiB after the flood settled, bound %d MiB", grown>>20, floodHeapBound>>20)
	}
	// At most burst + rate×duration datagrams per flood IP got through;
	// everything else was dropped before parsing.
	if st.Dropped == 0 || st.Passed >= floodPorts*floodPerPort/2 {
		t.Errorf("the filter let too much through: %+v", st)
	}
	if st.Sources > floodHosts+1 {
		t.Errorf("limiter tracks %d sources, want ≤ %d", st.Sources, floodHosts+1)
	}
	// sipgo's UDP pool holds the listener, the phone and at most one entry
	// per admitted datagram: never the 10,000 ports that tried.
	if st.PoolSize < 0 || uint64(st.PoolSize) > st.Passed+2 || st.PoolSize >= distinct/2 {
		t.Errorf("UDP pool has %d entries after %d admitted datagrams", st.PoolSize, st.Passed)
	}
}

// TestSIPFloodUnfilteredPoolGrowth measures what the filter prevents: with
// it off, sipgo's UDP pool keeps one entry per source port of the
// requests it handles (OPTIONS here). REGISTERs never reach it: the UDP
// REGISTER path answers them on the listening socket and keeps no entry
// per source, so an unfiltered REGISTER flood leaves the pool alone.
func TestSIPFloodUnfilteredPoolGrowth(t *testing.T) {
	if testing.Short() {
		t.Skip("flood")
	}
	for _, method := range []string{"OPTIONS", "REGISTER"} {
		t.Run(method, func(t *testing.T) {
			m := sipMain(t, t.TempDir(), func(c *Config) { c.UsersCore.SIP.RatePerSource = 0 })
			// The phone stays quiet during this flood: unfiltered, its
			// REGISTERs queue behind the flood's and may time out.
			distinct, grown, st := runFlood(t, m, method, false)
			t.Logf("unfiltered %s: %d pool entries, heap %+.1f MiB (≈ %d B per source ip:port)", method, st.PoolSize, float64(grown)/(1<<20), grown/int64(distinct))
			if method == "REGISTER" {
				// The listener and the phone's entry (its REGISTER before
				// the flood reached sipgo's pool only as the listener).
				if st.PoolSize > 2 {
					t.Errorf("unfiltered REGISTER flood: pool %d entries, want at most 2", st.PoolSize)
				}
				if grown > floodHeapBound {
					t.Errorf("heap grew %d MiB after the flood settled, bound %d MiB", grown>>20, floodHeapBound>>20)
				}
				return
			}
			// Not all: the kernel drops part of the flood when the
			// socket's receive buffer is full, before sipgo sees it.
			if st.PoolSize < distinct/10 {
				t.Errorf("unfiltered: pool %d entries of %d source ip:ports (sipgo keeps one per source that got through)", st.PoolSize, distinct)
			}
		})
	}
}
