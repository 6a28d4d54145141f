package sip

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/time/rate"
)

// FilterConfig sets the pre-parse UDP filter.
type FilterConfig struct {
	// DropUserAgents lists substrings (ASCII case ignored) of the
	// User-Agent values of scanners such as SIPVicious ("friendly-scanner"):
	// their messages are dropped unanswered, on every transport. Empty (the
	// default) drops none. Scanners can send any User-Agent, so this only
	// spares the work and the answers for the stock tools.
	DropUserAgents []string
	// Rate is the datagrams per second one source IP may send (default
	// 50; users-core's configured default is 500); Burst how many it may send at once (default 2×Rate). A
	// negative Rate turns the filter off.
	Rate  float64
	Burst int
	// MaxSources caps the source IPs tracked, and separately the source
	// ip:ports tracked (default 100,000 each). A datagram from a source
	// not tracked while the table is full (after evicting idle entries)
	// is dropped.
	MaxSources int
	// IdleAfter is how long a source stays tracked without traffic
	// (default one minute); idle ip:ports are also removed from sipgo's
	// UDP connection pool.
	IdleAfter time.Duration
	Now       func() time.Time
}

// FilterStats are the filter's counters, for metrics.
type FilterStats struct {
	Passed        uint64 // datagrams let through
	Dropped       uint64 // datagrams dropped over a source's rate
	OverflowDrops uint64 // datagrams dropped because the tables were full
	Sources       int    // source IPs tracked
	Ports         int    // source ip:ports tracked
	PoolPruned    uint64 // idle entries removed from sipgo's UDP pool
	PoolSize      int    // entries in sipgo's UDP pool now (-1: unknown)

	// UserAgentDrops are messages (any transport) dropped for a
	// User-Agent on the drop list.
	UserAgentDrops uint64
	// UnsafeDrops are messages (any transport) dropped because a header
	// every response echoes (Via, From, To, Call-ID, CSeq, Record-Route,
	// Timestamp) holds a control character: answering would send a header
	// of the sender's choosing.
	UnsafeDrops uint64

	// UDPTransactions are the UDP REGISTER transactions in progress or
	// kept for retransmissions (udpfast.go); UDPQueueFull the UDP
	// REGISTERs answered 503 at once because every worker was busy and
	// the queue was full.
	UDPTransactions int
	UDPQueueFull    uint64
}

type ipState struct {
	lim  *rate.Limiter
	seen time.Time
}

// SourceFilter is a sipgo read filter (sip.WithTransportLayerReadFilter)
// that rate-limits UDP datagrams per source IP before they are parsed.
//
// It keys on the IP, not ip:port: a flood from many ports of one host is
// one source. Over the rate a datagram is dropped by returning (nil, nil);
// it never returns an error, which on UDP would stop the listener.
//
// It filters UDP only. Stream transports hand the filter arbitrary read
// chunks, not messages, so counting them would mean nothing; those are
// bounded instead by the per-IP connection cap (limitListener), the read
// timeout and MaxInFlight.
//
// It also keeps sipgo's UDP connection pool bounded. sipgo's UDP reader
// adds one pool entry per distinct source ip:port (after the filter, so
// dropped datagrams add none) and never removes it while the listener
// lives. The filter remembers when each admitted ip:port was last seen and,
// once it is idle for IdleAfter, deletes its pool entry, but only if that
// entry is the listener socket itself (a registrar dials no UDP
// connections of its own). That is safe: a server transaction takes its
// connection when it is created, microseconds after the datagram is read,
// and keeps it; the pool entry is looked up only to answer a new request.
// And since sipgo's reader skips re-adding an entry when a datagram comes
// from the same source as the previous one, the filter re-adds the entry
// itself whenever it sees an ip:port it does not track, so a pruned source
// never finds its entry missing (which would make sipgo answer from a new
// ephemeral socket). With the filter off (negative Rate) nothing is pruned.
//
// Residual growth: sipgo's reader also keeps a private set (acceptedAddr)
// of every distinct ip:port it admitted since the listener started, used
// only for cleanup when the listener stops. It cannot be reached from
// outside and grows by about 56 bytes per distinct admitted ip:port. The
// filter bounds how fast it grows (Rate new ports per second per source
// IP, at most 65,535 ports per IP, so about 3.7 MB per real source host);
// only a long flood from spoofed, ever-changing source IPs grows it
// further, until the process restarts.
type SourceFilter struct {
	cfg      FilterConfig
	disabled bool
	agents   userAgentList

	mu        sync.Mutex
	ips       map[netip.Addr]*ipState
	ports     map[string]time.Time
	lastSweep time.Time
	pool      *sip.ConnectionPool

	passed, dropped, overflow, pruned atomic.Uint64
	uaDrops, unsafeDrops              atomic.Uint64
}

// NewSourceFilter builds a filter for cfg.
func NewSourceFilter(cfg FilterConfig) *SourceFilter {
	if cfg.Rate == 0 {
		cfg.Rate = 50
	}
	if cfg.Burst <= 0 {
		cfg.Burst = int(2 * cfg.Rate)
		if cfg.Burst < 1 {
			cfg.Burst = 1
		}
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = 100_000
	}
	if cfg.IdleAfter <= 0 {
		cfg.IdleAfter = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &SourceFilter{
		cfg:      cfg,
		disabled: cfg.Rate < 0,
		agents:   newUserAgentList(cfg.DropUserAgents),
		ips:      map[netip.Addr]*ipState{},
		ports:    map[string]time.Time{},
	}
}

// attach lets the filter prune (and re-add) entries of sipgo's UDP pool.
func (f *SourceFilter) attach(pool *sip.ConnectionPool) {
	f.mu.Lock()
	f.pool = pool
	f.mu.Unlock()
}

// Filter is the sip.TransportReadFilter. Each datagram is first
// inspected (inspectRaw: control characters in echoed headers, the
// User-Agent drop list; always on, lock-free), then rate-limited.
func (f *SourceFilter) Filter(p sip.TransportReadProps, data []byte) ([]byte, error) {
	if p.Transport != "UDP" {
		return data, nil
	}
	if v := inspectRaw(data, f.agents); v != admit {
		f.count(v)
		return nil, nil
	}
	if f.disabled {
		return data, nil
	}
	ip, key, ok := sourceOf(p.RemoteAddr)
	if !ok {
		return data, nil
	}
	now := f.cfg.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maybeSweep(now, false)

	st := f.ips[ip]
	if st == nil {
		if len(f.ips) >= f.cfg.MaxSources {
			f.maybeSweep(now, true)
		}
		if len(f.ips) >= f.cfg.MaxSources {
			f.overflow.Add(1)
			return nil, nil
		}
		st = &ipState{lim: rate.NewLimiter(rate.Limit(f.cfg.Rate), f.cfg.Burst)}
		f.ips[ip] = st
	}
	st.seen = now
	if !st.lim.AllowN(now, 1) {
		f.dropped.Add(1)
		return nil, nil
	}
	if _, tracked := f.ports[key]; !tracked {
		if len(f.ports) >= f.cfg.MaxSources {
			f.maybeSweep(now, true)
		}
		if len(f.ports) >= f.cfg.MaxSources {
			f.overflow.Add(1)
			return nil, nil
		}
		f.readd(key, p.LocalAddr)
	}
	f.ports[key] = now
	f.passed.Add(1)
	return data, nil
}

// readd puts the pool entry of key back if it was pruned: sipgo's reader
// only adds one when the source differs from the previous datagram's.
func (f *SourceFilter) readd(key string, local net.Addr) {
	if f.pool == nil || local == nil {
		return
	}
	if c := f.pool.Get(key); c != nil {
		c.Ref(-1)
		return
	}
	l := f.pool.Get(local.String())
	if l == nil {
		return
	}
	l.Ref(-1)
	f.pool.Add(key, l)
}

// maybeSweep evicts idle sources, at most once per IdleAfter/4, or once a
// second when force is set (a table is full): O(entries) under f.mu,
// which is held, so at most a few milliseconds of the UDP reader every 15 s
// with full tables.
func (f *SourceFilter) maybeSweep(now time.Time, force bool) {
	every := f.cfg.IdleAfter / 4
	if force {
		every = time.Second
	}
	if now.Sub(f.lastSweep) < every {
		return
	}
	f.lastSweep = now
	cutoff := now.Add(-f.cfg.IdleAfter)
	for ip, st := range f.ips {
		if st.seen.Before(cutoff) {
			delete(f.ips, ip)
		}
	}
	var stale []string
	for key, seen := range f.ports {
		if seen.Before(cutoff) {
			delete(f.ports, key)
			stale = append(stale, key)
		}
	}
	f.prunePool(stale)
}

// prunePool removes the pool entries of stale ip:ports that point at a
// listener socket. f.mu is held, so a datagram from one of them cannot
// be re-added concurrently.
func (f *SourceFilter) prunePool(stale []string) {
	if f.pool == nil {
		return
	}
	for _, key := range stale {
		c := f.pool.Get(key)
		if c == nil {
			continue
		}
		c.Ref(-1)
		if u, ok := c.(*sip.UDPConnection); ok && u.Listener {
			f.pool.Delete(key)
			f.pruned.Add(1)
		}
	}
}

// admit is the check after parsing, for every request a handler gets:
// inspectRequest, with the User-Agent checked only for the stream
// transports (a UDP datagram had it checked before parsing). It reports
// whether the request may be answered.
func (f *SourceFilter) admit(req *sip.Request) bool {
	v := inspectRequest(req, f.agents, req.Transport() != "UDP")
	if v == admit {
		return true
	}
	f.count(v)
	return false
}

func (f *SourceFilter) count(v verdict) {
	switch v {
	case dropUserAgent:
		f.uaDrops.Add(1)
	case dropUnsafe:
		f.unsafeDrops.Add(1)
	}
}

// Stats returns the counters.
func (f *SourceFilter) Stats() FilterStats {
	f.mu.Lock()
	st := FilterStats{Sources: len(f.ips), Ports: len(f.ports), PoolSize: -1}
	if f.pool != nil {
		st.PoolSize = f.pool.Size()
	}
	f.mu.Unlock()
	st.Passed, st.Dropped, st.OverflowDrops, st.PoolPruned = f.passed.Load(), f.dropped.Load(), f.overflow.Load(), f.pruned.Load()
	st.UserAgentDrops, st.UnsafeDrops = f.uaDrops.Load(), f.unsafeDrops.Load()
	return st
}

// sourceOf returns the IP and the ip:port string of a UDP remote address.
func sourceOf(a net.Addr) (netip.Addr, string, bool) {
	switch a := a.(type) {
	case *net.UDPAddr:
		ap := a.AddrPort()
		return ap.Addr().Unmap(), a.String(), ap.Addr().IsValid()
	case nil:
		return netip.Addr{}, "", false
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Addr{}, "", false
		}
		return ap.Addr().Unmap(), a.String(), true
	}
}
