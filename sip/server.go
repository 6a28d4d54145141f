package sip

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/jwks"
)

// CredentialSource gives the HA1 of a user for Digest; identity.Service
// satisfies it. qualified asks for the HA1 over "user@realm", for clients
// that send that as their Digest username. ok is false, without error, for an unknown, disabled or
// token-only user or a missing HA1: all are answered alike.
type CredentialSource interface {
	DigestHA1(ctx context.Context, username, realm string, alg identity.DigestAlgorithm, qualified bool) (u *identity.User, ha1 string, ok bool, err error)
}

// Users looks users up by id, for Bearer tokens of our own issuer.
type Users interface {
	User(ctx context.Context, ref string) (*identity.User, error)
}

// TokenVerifier checks Bearer tokens; *jwks.Verifier satisfies it.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*jwks.Claims, error)
}

// Regulator throttles guessing per user and per address;
// *identity.Regulator satisfies it.
type Regulator interface {
	Check(ctx context.Context, username, addr string) error
	Failure(ctx context.Context, username, addr string) (locked bool, err error)
	Success(ctx context.Context, username string) error
}

// Config holds what the SIP side needs.
type Config struct {
	// Domains served; each is also the Digest realm of its AoRs.
	Domains []string
	// Algorithms offered in the 401, in order of preference (default
	// SHA-256, MD5); DomainAlgorithms overrides them per domain.
	Algorithms       []identity.DigestAlgorithm
	DomainAlgorithms map[string][]identity.DigestAlgorithm
	// BearerChallenge lists the transports (UDP, TCP, TLS, WS, WSS) whose
	// 401 also carries a Bearer challenge.
	BearerChallenge []string
	// ClientRules adjust the challenge per User-Agent; nil means
	// DefaultClientRules.
	ClientRules []ClientRule
	// AuthzServer is the authorization server named in Bearer challenges
	// (our issuer).
	AuthzServer string

	NonceSecret   []byte        // shared by every node
	NonceLifetime time.Duration // default 5 minutes
	// NonceCounts, when set, makes the nonce-count replay check hold
	// across every node on the database; nil leaves it to this process's
	// ReplayGuard (enough for one node).
	NonceCounts NonceCountStore

	Credentials CredentialSource
	Users       Users
	Verifier    TokenVerifier // audience: the SIP audience
	// OwnIssuer is the IssuerName our own tokens verify under; their sub
	// is a users-core user id.
	OwnIssuer string
	// UsernameClaims map a trusted issuer's token to the SIP user (default
	// preferred_username, then username).
	UsernameClaims []string
	// BindingsOutliveTokens lets a binding made with a Bearer token live
	// past the token's expiry (default false: the binding is capped).
	BindingsOutliveTokens bool

	Regulator Regulator
	Bindings  BindingStore
	// Outcomes, when set, is told every REGISTER's outcome (metrics, the
	// audit trail). It runs on the request path: keep it quick.
	Outcomes func(RegisterOutcome)
	Policy   Policy
	Node     string

	// Stream transports: read and write timeouts (a read timeout longer
	// than clients' keep-alive interval) and a cap on connections per
	// client IP.
	ReadTimeout   time.Duration
	WriteTimeout  time.Duration
	MaxConnsPerIP int
	MaxInFlight   int // REGISTERs handled at once; more get 503
	// RegisterTimeout bounds how long one REGISTER may wait for the
	// database and the token keys (default 2 s); past it the answer is
	// 503 with Retry-After (overload.go).
	RegisterTimeout time.Duration
	// Filter rate-limits UDP datagrams per source IP before parsing, and
	// drops scanners' User-Agents (filter.go, inspect.go).
	Filter         FilterConfig
	ServerHeader   string
	Logger         zerolog.Logger
	Now            func() time.Time
	NewID          func() string
	ReplayCapacity int
}

var sipgoLoggerOnce sync.Once

// Server is the SIP registrar.
type Server struct {
	cfg      Config
	ua       *sipgo.UserAgent
	srv      *sipgo.Server
	nonces   *NonceKeeper
	replay   *ReplayGuard
	fallback *fallbackMemory
	domains  map[string]bool
	bearerOn map[string]bool
	inflight chan struct{}
	filter   *SourceFilter
	udp      *udpFast
	handlers sync.WaitGroup
	log      zerolog.Logger

	mu        sync.Mutex
	closers   []func() error
	serveDone sync.WaitGroup
	closed    bool
}

// NewServer builds the registrar for cfg.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Credentials == nil || cfg.Bindings == nil || cfg.Regulator == nil {
		return nil, errors.New("sip.NewServer: credentials, bindings and regulator are required")
	}
	if len(cfg.Domains) == 0 {
		return nil, errors.New("sip.NewServer: at least one domain is required")
	}
	if len(cfg.NonceSecret) < 32 {
		return nil, errors.New("sip.NewServer: the nonce secret must be at least 32 bytes")
	}
	if cfg.Algorithms == nil {
		cfg.Algorithms = []identity.DigestAlgorithm{identity.SHA256, identity.MD5}
	}
	if cfg.ClientRules == nil {
		cfg.ClientRules = DefaultClientRules()
	}
	if len(cfg.UsernameClaims) == 0 {
		cfg.UsernameClaims = []string{"preferred_username", "username"}
	}
	if cfg.Policy == (Policy{}) {
		cfg.Policy = DefaultPolicy()
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	if cfg.NonceLifetime <= 0 {
		cfg.NonceLifetime = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 4096
	}
	if cfg.RegisterTimeout <= 0 {
		cfg.RegisterTimeout = DefaultRegisterTimeout
	}
	if cfg.ServerHeader == "" {
		cfg.ServerHeader = "users-core"
	}
	if cfg.ReplayCapacity <= 0 {
		cfg.ReplayCapacity = 200_000
	}
	s := &Server{
		cfg:      cfg,
		nonces:   NewNonceKeeper(cfg.NonceSecret, cfg.NonceLifetime, cfg.Now),
		replay:   NewReplayGuard(cfg.ReplayCapacity, WithReplayClock(cfg.Now)),
		fallback: newFallbackMemory(100_000, 10*time.Minute),
		domains:  map[string]bool{},
		bearerOn: map[string]bool{},
		inflight: make(chan struct{}, cfg.MaxInFlight),
		filter:   NewSourceFilter(cfg.Filter),
		log:      cfg.Logger.With().Str("component", "sip").Logger(),
	}
	s.udp = newUDPFast(s)
	for _, d := range cfg.Domains {
		if err := ValidateRealm(d); err != nil {
			return nil, fmt.Errorf("sip.NewServer: domain %q cannot be a Digest realm: %w", d, err)
		}
		s.domains[strings.ToLower(d)] = true
	}
	for _, t := range cfg.BearerChallenge {
		s.bearerOn[strings.ToUpper(t)] = true
	}
	for _, a := range cfg.Algorithms {
		if _, err := identity.DigestHash(a); err != nil {
			return nil, err
		}
	}

	// sipgo logs through slog; its logger is captured when the UA is
	// built, so install the redacting one first. Raw messages (which
	// carry Authorization: digests and Bearer tokens) never reach a log.
	// sipgo's default logger is a process-wide variable that its
	// goroutines read without synchronisation: set it once, before the
	// first UA, so a second Server in the process (tests) races nothing.
	sipgoLoggerOnce.Do(func() {
		sip.SetDefaultLogger(slog.New(newRedactingHandler(cfg.Logger.With().Str("component", "sipgo").Logger())))
	})
	tcp := &sip.TransportTCP{ReadTimeout: cfg.ReadTimeout, WriteTimeout: cfg.WriteTimeout}
	tlsT := &sip.TransportTLS{TransportTCP: &sip.TransportTCP{ReadTimeout: cfg.ReadTimeout, WriteTimeout: cfg.WriteTimeout}}
	ws := &sip.TransportWS{ReadTimeout: cfg.ReadTimeout, WriteTimeout: cfg.WriteTimeout}
	wss := &sip.TransportWSS{TransportWS: &sip.TransportWS{ReadTimeout: cfg.ReadTimeout, WriteTimeout: cfg.WriteTimeout}}
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(cfg.ServerHeader),
		sipgo.WithUserAgentTransportLayerOptions(
			sip.WithTransportLayerTransports(sip.TransportsConfig{TCP: tcp, TLS: tlsT, WS: ws, WSS: wss}),
			// After the transports above, so only the default UDP
			// transport gets the filter (it filters UDP only anyway).
			sip.WithTransportLayerReadFilter(s.readFilter),
		),
	)
	if err != nil {
		return nil, err
	}
	s.filter.attach(ua.TransportLayer().Pool("udp"))
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		ua.Close()
		return nil, err
	}
	s.ua, s.srv = ua, srv
	srv.OnRegister(s.tracked(s.HandleRegister))
	srv.OnOptions(s.tracked(s.handleOptions))
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	srv.OnNoRoute(s.tracked(s.handleOther))
	return s, nil
}

// readFilter runs on each datagram sipgo's UDP reader reads, before
// parsing: the source filter first, then a REGISTER is taken over by the
// UDP REGISTER path (udpfast.go) and dropped for sipgo.
func (s *Server) readFilter(p sip.TransportReadProps, data []byte) ([]byte, error) {
	data, err := s.filter.Filter(p, data)
	if err != nil || len(data) == 0 || p.Transport != "UDP" {
		return data, err
	}
	if s.udp.take(p, data) {
		return nil, nil
	}
	return data, nil
}

// FilterStats returns the UDP source filter's counters, the size of
// sipgo's UDP connection pool and of the UDP REGISTER transactions, for
// metrics.
func (s *Server) FilterStats() FilterStats {
	st := s.filter.Stats()
	st.UDPTransactions, st.UDPQueueFull = s.udp.txs.size(), s.udp.overload.Load()
	return st
}

// tracked counts a handler in flight, so Shutdown can let it finish. A
// request the filter does not admit after parsing (a scanner's
// User-Agent on a stream transport, a control character in a header the
// answer would echo) gets no answer; sipgo then ends its transaction.
func (s *Server) tracked(h func(*sip.Request, sip.ServerTransaction)) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		s.handlers.Add(1)
		defer s.handlers.Done()
		defer s.recoverHandler(req)
		if !s.filter.admit(req) {
			return
		}
		h(req, tx)
	}
}

// recoverHandler, deferred in every request handler, turns a panic into an
// error line instead of a crash of the registrar. The line names the
// method, source and transport only: the request and the panic's value may
// carry credentials. The request gets no answer; its client retransmits or
// gives up.
func (s *Server) recoverHandler(req *sip.Request) {
	if v := recover(); v != nil {
		s.logPanic(v, string(req.Method), req.Source(), req.Transport())
	}
}

func (s *Server) logPanic(v any, method, source, transport string) {
	s.log.Error().Str("method", method).Str("source", source).Str("transport", transport).
		Str("panic_type", fmt.Sprintf("%T", v)).Msg("request handler panicked; request dropped")
}

// Listeners names the addresses to listen on; empty or "off" disables one.
type Listeners struct {
	UDP, TCP, TLS, WS, WSS string
	TLSConfig              *tls.Config // required for TLS and WSS
}

// Listen opens the configured listeners and serves them in the
// background. It returns the bound addresses by transport ("udp", "tcp",
// "tls", "ws", "wss").
func (s *Server) Listen(l Listeners) (map[string]string, error) {
	bound := map[string]string{}
	on := func(a string) bool { return a != "" && a != "off" }
	if (on(l.TLS) || on(l.WSS)) && l.TLSConfig == nil {
		return nil, errors.New("sip: TLS and WSS need a certificate and key")
	}
	if on(l.UDP) {
		pc, err := net.ListenPacket("udp", l.UDP)
		if err != nil {
			return nil, s.failListen("udp", l.UDP, err)
		}
		bound["udp"] = pc.LocalAddr().String()
		s.udp.addConn(pc)
		s.serve(pc.Close, func() error { return s.srv.ServeUDP(pc) })
	}
	stream := []struct {
		name, addr string
		tls        bool
		serve      func(net.Listener) error
	}{
		{"tcp", l.TCP, false, s.srv.ServeTCP},
		{"tls", l.TLS, true, s.srv.ServeTLS},
		{"ws", l.WS, false, s.srv.ServeWS},
		{"wss", l.WSS, true, s.srv.ServeWSS},
	}
	for _, st := range stream {
		if !on(st.addr) {
			continue
		}
		ln, err := net.Listen("tcp", st.addr)
		if err != nil {
			return nil, s.failListen(st.name, st.addr, err)
		}
		bound[st.name] = ln.Addr().String()
		var wrapped net.Listener = newLimitListener(ln, s.cfg.MaxConnsPerIP)
		if st.tls {
			wrapped = tls.NewListener(wrapped, l.TLSConfig)
		}
		serve := st.serve
		s.serve(ln.Close, func() error { return serve(wrapped) })
	}
	return bound, nil
}

func (s *Server) failListen(name, addr string, err error) error {
	s.closeListeners()
	return fmt.Errorf("sip %s: cannot listen on %s: %w", name, addr, err)
}

// serve runs fn in the background until its listener is closed.
func (s *Server) serve(closeFn func() error, fn func() error) {
	s.mu.Lock()
	s.closers = append(s.closers, closeFn)
	s.mu.Unlock()
	s.serveDone.Add(1)
	go func() {
		defer s.serveDone.Done()
		if err := fn(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Error().Err(err).Msg("listener stopped")
		}
	}()
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	closers := s.closers
	s.closers = nil
	s.mu.Unlock()
	for _, c := range closers {
		c()
	}
}

// Shutdown stops accepting, lets REGISTERs in flight finish (until ctx
// ends), then closes every connection and transaction.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.closeListeners()
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.New("sip: shutdown: REGISTERs still in flight")
	}
	s.ua.Close()
	s.serveDone.Wait()
	s.udp.close()
	return err
}

// limitListener caps concurrent connections per client IP: a connection
// over the cap is closed at once.
type limitListener struct {
	net.Listener
	max   int
	mu    sync.Mutex
	count map[string]int
}

func newLimitListener(l net.Listener, max int) net.Listener {
	if max <= 0 {
		return l
	}
	return &limitListener{Listener: l, max: max, count: map[string]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := hostOf(c.RemoteAddr().String())
		l.mu.Lock()
		if l.count[ip] >= l.max {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.count[ip]++
		l.mu.Unlock()
		return &countedConn{Conn: c, release: func() { l.release(ip) }}, nil
	}
}

func (l *limitListener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count[ip]--; l.count[ip] <= 0 {
		delete(l.count, ip)
	}
}

type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// hostOf returns the host part of an ip:port.
func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}
