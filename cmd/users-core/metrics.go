package main

// Metrics and probes: GET /metrics in the Prometheus text format (through
// prometheus/client_golang: the exposition format, escaping and content
// negotiation are its job, not ours) and the readiness check behind
// GET /ready. Every label has a small fixed set of values: no usernames,
// addresses or raw paths ever become a label, so a hostile client cannot
// grow the series count.

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/jwks"
	"github.com/rvoip/users-core/sip"
)

// bindingsTTL is how long a count of active bindings is reused: the count
// is a COUNT(*) over the bindings table, too dear for every scrape of
// every scraper.
const bindingsTTL = 15 * time.Second

// metrics holds users-core's Prometheus collectors on a private registry
// (never the global default, so two Mains in one test process do not
// collide). It is an identity.EventSink for the login and token counters.
type metrics struct {
	reg *prometheus.Registry
	log zerolog.Logger

	sipRegister   *prometheus.CounterVec
	logins        *prometheus.CounterVec
	lockouts      *prometheus.CounterVec
	tokensIssued  *prometheus.CounterVec
	refreshReuse  prometheus.Counter
	verifications *prometheus.CounterVec
	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
}

// bindingCounter counts the bindings not expired at now; the store
// satisfies it.
type bindingCounter interface {
	CountBindings(ctx context.Context, now time.Time) (int, error)
}

// keyLister lists the signing keys; *jwks.Keyring satisfies it.
type keyLister interface {
	Keys() []jwks.KeyInfo
}

// newMetrics registers every users-core metric, plus the Go runtime and
// process collectors, on a new registry.
func newMetrics(bindings bindingCounter, hasher *identity.Hasher, keys keyLister, logger zerolog.Logger) *metrics {
	const ns = "users_core"
	reg := prometheus.NewRegistry()
	mt := &metrics{
		reg: reg,
		log: logger.With().Str("component", "metrics").Logger(),
		sipRegister: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "sip_register_total",
			Help: "REGISTER requests answered, by transport, credential scheme (digest, bearer, none) and result.",
		}, []string{"transport", "scheme", "result"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "logins_total",
			Help: "HTTP password logins by result: success, failure (wrong password, unknown or disabled user) or locked (refused by the regulator).",
		}, []string{"result"}),
		lockouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "lockouts_total",
			Help: "Locks set on a username or client address after too many failures, by protocol (http logins, sip Digest).",
		}, []string{"protocol"}),
		tokensIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "tokens_issued_total",
			Help: "Token pairs issued, by grant: login (password) or refresh (rotation).",
		}, []string{"grant"}),
		refreshReuse: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "token_refresh_reuse_total",
			Help: "Rotated refresh tokens presented again after the grace window; each revoked its whole family.",
		}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "token_verifications_total",
			Help: "Access-token verifications by protocol (http, sip) and result: ok or the jwks rejection reason.",
		}, []string{"protocol", "result"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "http_requests_total",
			Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "http_request_duration_seconds",
			Help: "HTTP request latency by route pattern and method.",
			// Most routes answer in a millisecond; a login pays for one
			// Argon2id run (tens to hundreds of ms) plus any queueing.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
	}
	bc := &bindingsCache{count: bindings, ttl: bindingsTTL, log: mt.log}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Name: "build_info", Help: "Always 1; the version label names the running build.",
			ConstLabels: prometheus.Labels{"version": Version()},
		}, func() float64 { return 1 }),
		mt.sipRegister, mt.logins, mt.lockouts, mt.tokensIssued, mt.refreshReuse,
		mt.verifications, mt.httpRequests, mt.httpDuration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Name: "sip_bindings_active",
			Help: "SIP bindings not yet expired, across every AoR (counted at most every 15 s).",
		}, bc.value),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Name: "argon2_in_flight", Help: "Argon2id computations running now.",
		}, func() float64 { return float64(hasher.Stats().InFlight) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Name: "argon2_queued", Help: "Callers waiting for an Argon2id slot now.",
		}, func() float64 { return float64(hasher.Stats().Queued) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: ns, Name: "argon2_queue_wait_seconds_total",
			Help: "Total time callers waited for an Argon2id slot, including those that gave up.",
		}, func() float64 { return hasher.Stats().QueueWait.Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: ns, Name: "argon2_runs_total", Help: "Argon2id computations started, dummy verifies included.",
		}, func() float64 { return float64(hasher.Stats().Runs) }),
	)
	for _, state := range []jwks.KeyState{jwks.StateNext, jwks.StateActive, jwks.StateRetired} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Name: "signing_keys", Help: "Signing keys in the keyring by state (next, active, retired).",
			ConstLabels: prometheus.Labels{"state": string(state)},
		}, func() float64 {
			n := 0
			for _, k := range keys.Keys() {
				if k.State == state {
					n++
				}
			}
			return float64(n)
		}))
	}
	// Series that exist from the start read 0 instead of being absent, so
	// rate() and alerts work before the first event.
	for _, r := range []string{"success", "failure", "locked"} {
		mt.logins.WithLabelValues(r)
	}
	for _, p := range []string{"http", "sip"} {
		mt.lockouts.WithLabelValues(p)
		mt.verifications.WithLabelValues(p, "ok")
	}
	for _, g := range []string{"login", "refresh"} {
		mt.tokensIssued.WithLabelValues(g)
	}
	return mt
}

// handler serves the registry in the Prometheus exposition format.
func (mt *metrics) handler() http.Handler {
	return promhttp.HandlerFor(mt.reg, promhttp.HandlerOpts{
		ErrorLog: newStdLogger(mt.log, "metrics"),
		Registry: mt.reg,
		// The listener is open to anyone: bound concurrent scrapes.
		MaxRequestsInFlight: 4,
	})
}

// Emit counts the login and token events of the identity service.
func (mt *metrics) Emit(e identity.Event) {
	switch e.Action {
	case identity.ActionLoginSucceeded:
		mt.logins.WithLabelValues("success").Inc()
		mt.tokensIssued.WithLabelValues("login").Inc()
	case identity.ActionLoginFailed:
		if e.Detail == "locked" { // identity.Tokens.Login: refused by the regulator
			mt.logins.WithLabelValues("locked").Inc()
		} else {
			mt.logins.WithLabelValues("failure").Inc()
		}
	case identity.ActionLockout:
		mt.lockouts.WithLabelValues(lockoutProtocol(e)).Inc()
	case identity.ActionTokenRefreshed:
		mt.tokensIssued.WithLabelValues("refresh").Inc()
	case identity.ActionRefreshReused:
		mt.refreshReuse.Inc()
	}
}

// sipOutcome counts one answered REGISTER; it is a sip.Config.Outcomes
// function.
func (mt *metrics) sipOutcome(o sip.RegisterOutcome) {
	mt.sipRegister.WithLabelValues(transportLabel(o.Transport), schemeLabel(o.Scheme), registerResult(o)).Inc()
}

// registerResult folds a REGISTER's answer into a small fixed set.
func registerResult(o sip.RegisterOutcome) string {
	s := o.Status
	switch {
	case s >= 200 && s < 300:
		return "ok"
	case s == 401 && o.AuthFailed:
		return "auth_failed"
	case s == 401:
		return "challenge"
	case s == 403 && o.Reason == "locked":
		return "locked"
	case s == 403:
		return "forbidden"
	case s == 404:
		return "not_found"
	case s == 423:
		return "interval_too_brief"
	case s >= 400 && s < 500:
		return "bad_request"
	case s == 503:
		return "unavailable"
	case s >= 500 && s < 600:
		return "server_error"
	}
	return "other"
}

// transportLabel lower-cases the transports we serve; anything else (the
// name may come from a client's Via) is "other".
func transportLabel(t string) string {
	switch t = strings.ToLower(t); t {
	case "udp", "tcp", "tls", "ws", "wss":
		return t
	}
	return "other"
}

func schemeLabel(s string) string {
	switch s {
	case "digest", "bearer":
		return s
	case "":
		return "none"
	}
	return "other"
}

// tokenVerifier is the method httpapi.TokenVerifier and sip.TokenVerifier
// share; *jwks.Verifier has it.
type tokenVerifier interface {
	Verify(ctx context.Context, token string) (*jwks.Claims, error)
}

// verifier returns v counting its results under protocol ("http", "sip").
func (mt *metrics) verifier(protocol string, v tokenVerifier) *countingVerifier {
	return &countingVerifier{next: v, results: mt.verifications.MustCurryWith(prometheus.Labels{"protocol": protocol})}
}

// countingVerifier counts every verification: "ok", or the jwks rejection
// reason (a fixed set), or "error" for an error without one.
type countingVerifier struct {
	next    tokenVerifier
	results *prometheus.CounterVec
}

// Verify verifies with the wrapped verifier and counts the result.
func (v *countingVerifier) Verify(ctx context.Context, token string) (*jwks.Claims, error) {
	c, err := v.next.Verify(ctx, token)
	result := "ok"
	if err != nil {
		if result = string(jwks.ReasonOf(err)); result == "" {
			result = "error"
		}
	}
	v.results.WithLabelValues(result).Inc()
	return c, err
}

// lockoutProtocol tells a lockout set by failed SIP REGISTERs
// (auditLockouts) from one set by HTTP logins.
func lockoutProtocol(e identity.Event) string {
	if strings.HasPrefix(e.Detail, sipLockoutDetail) {
		return "sip"
	}
	return "http"
}

// sipFilter registers the SIP filter's counters (sip.FilterStats), read
// from stats at each scrape: what it dropped by reason, what it let
// through, the sources it tracks and sipgo's UDP connection pool.
func (mt *metrics) sipFilter(stats func() sip.FilterStats) {
	const ns = "users_core"
	for _, d := range []struct {
		reason string
		count  func(sip.FilterStats) uint64
	}{
		{"rate", func(s sip.FilterStats) uint64 { return s.Dropped }},
		{"table_full", func(s sip.FilterStats) uint64 { return s.OverflowDrops }},
		{"user_agent", func(s sip.FilterStats) uint64 { return s.UserAgentDrops }},
		{"unsafe_header", func(s sip.FilterStats) uint64 { return s.UnsafeDrops }},
	} {
		mt.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: ns, Name: "sip_filter_dropped_total",
			Help: "SIP messages dropped unanswered by the filter, by reason: rate (over a source IP's UDP rate), " +
				"table_full (UDP source tables full), user_agent (drop_user_agents), unsafe_header (control character in a header the answer would echo).",
			ConstLabels: prometheus.Labels{"reason": d.reason},
		}, func() float64 { return float64(d.count(stats())) }))
	}
	mt.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: ns, Name: "sip_filter_passed_total",
			Help: "UDP datagrams the per-source rate filter let through (0 while it is off).",
		}, func() float64 { return float64(stats().Passed) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Name: "sip_filter_sources",
			Help: "Source IP addresses the UDP rate filter tracks now.",
		}, func() float64 { return float64(stats().Sources) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Name: "sip_udp_pool_entries",
			Help: "Entries in sipgo's UDP connection pool now (one per recent source ip:port).",
		}, func() float64 { return float64(stats().PoolSize) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: ns, Name: "sip_udp_pool_pruned_total",
			Help: "Idle source entries the filter removed from sipgo's UDP connection pool.",
		}, func() float64 { return float64(stats().PoolPruned) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Name: "sip_udp_transactions",
			Help: "UDP REGISTER transactions in progress or kept for retransmissions (answers for 32 s, challenges for 4 s).",
		}, func() float64 { return float64(stats().UDPTransactions) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: ns, Name: "sip_udp_queue_full_total",
			Help: "UDP REGISTERs answered 503 at once because every worker was busy and the queue (max_in_flight) was full.",
		}, func() float64 { return float64(stats().UDPQueueFull) }),
	)
}

// instrument counts and times every request by the pattern the API's mux
// matched (it sets r.Pattern on the request it serves), never by the raw
// path: "unmatched" when no pattern was set.
func (mt *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		method := methodLabel(r.Method)
		mt.httpRequests.WithLabelValues(route, method, strconv.Itoa(sw.code())).Inc()
		mt.httpDuration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	})
}

// methodLabel keeps the standard methods and folds the rest (any token is
// a valid method) into "other".
func methodLabel(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return m
	}
	return "other"
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK // the handler wrote nothing: net/http sends 200
	}
	return w.status
}

// bindingsCache counts active bindings at most once per ttl. A failed
// count is logged and the last value kept until the next try.
type bindingsCache struct {
	count bindingCounter
	ttl   time.Duration
	log   zerolog.Logger

	mu  sync.Mutex
	at  time.Time
	val float64
}

func (b *bindingsCache) value() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if !b.at.IsZero() && now.Sub(b.at) < b.ttl {
		return b.val
	}
	b.at = now
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := b.count.CountBindings(ctx, now)
	if err != nil {
		b.log.Warn().Err(err).Msg("counting active bindings")
		return b.val
	}
	b.val = float64(n)
	return b.val
}

// multiSink returns an EventSink handing each event to every non-nil sink
// in order: the audit trail and the metrics both listen to the identity
// service.
func multiSink(sinks ...identity.EventSink) identity.EventSink {
	var live []identity.EventSink
	for _, s := range sinks {
		if s != nil {
			live = append(live, s)
		}
	}
	return identity.EventFunc(func(e identity.Event) {
		for _, s := range live {
			s.Emit(e)
		}
	})
}

// chainOutcomes returns a sip.Config.Outcomes function calling every
// non-nil fn in order (audit and metrics), or nil when there is none.
func chainOutcomes(fns ...func(sip.RegisterOutcome)) func(sip.RegisterOutcome) {
	var live []func(sip.RegisterOutcome)
	for _, f := range fns {
		if f != nil {
			live = append(live, f)
		}
	}
	if len(live) == 0 {
		return nil
	}
	return func(o sip.RegisterOutcome) {
		for _, f := range live {
			f(o)
		}
	}
}

// eventHub is an EventSink whose receivers are attached after the
// identity service is built: OpenApp builds the service, and only Main
// (serve) adds its metrics. Emit is lock-free.
type eventHub struct {
	mu    sync.Mutex
	sinks atomic.Pointer[[]identity.EventSink]
}

// Emit hands e to every attached sink.
func (h *eventHub) Emit(e identity.Event) {
	if p := h.sinks.Load(); p != nil {
		for _, s := range *p {
			s.Emit(e)
		}
	}
}

// attach adds s to the receivers.
func (h *eventHub) attach(s identity.EventSink) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var next []identity.EventSink
	if p := h.sinks.Load(); p != nil {
		next = append(next, *p...)
	}
	next = append(next, s)
	h.sinks.Store(&next)
}

// readiness is the check behind GET /ready: the database answers, a
// signing key is loaded, and every configured listener is bound.
type readiness struct {
	ping func(ctx context.Context) error
	keys keyLister
	now  func() time.Time
	want []string // configured listeners, as the ready file names them
	log  zerolog.Logger

	bound atomic.Pointer[map[string]string]
}

func newReadiness(u UsersCoreConfig, ping func(context.Context) error, keys keyLister, logger zerolog.Logger) *readiness {
	var want []string
	for _, l := range []struct{ name, addr string }{
		{"http", u.APIBindAddress}, {"sip_udp", u.SIP.UDP}, {"sip_tcp", u.SIP.TCP},
		{"sip_tls", u.SIP.TLS}, {"sip_ws", u.SIP.WS}, {"sip_wss", u.SIP.WSS},
	} {
		if on(l.addr) {
			want = append(want, l.name)
		}
	}
	return &readiness{ping: ping, keys: keys, now: time.Now, want: want, log: logger.With().Str("component", "ready").Logger()}
}

// listening records the bound listeners (nil: none, as when shutting
// down). It is safe on a nil readiness.
func (r *readiness) listening(addrs map[string]string) {
	if r == nil {
		return
	}
	if addrs == nil {
		r.bound.Store(nil)
		return
	}
	r.bound.Store(&addrs)
}

// check returns nil when ready, else an error naming every failing part.
// The words are for operators and load balancers; detail such as the
// database's own error is logged, not sent.
func (r *readiness) check(ctx context.Context) error {
	var failing []string
	var bound map[string]string
	if p := r.bound.Load(); p != nil {
		bound = *p
	}
	var down []string
	for _, name := range r.want {
		if bound[name] == "" {
			down = append(down, name)
		}
	}
	if len(down) > 0 {
		failing = append(failing, "listeners not up: "+strings.Join(down, ", "))
	}
	if err := r.ping(ctx); err != nil {
		r.log.Warn().Err(err).Msg("database ping failed")
		failing = append(failing, "database unreachable")
	}
	if !signingKeyLoaded(r.keys.Keys(), r.now()) {
		failing = append(failing, "no signing key loaded")
	}
	if len(failing) > 0 {
		return errors.New(strings.Join(failing, "; "))
	}
	return nil
}

// signingKeyLoaded reports whether some key can sign now: the active key,
// or a next key whose activation time has passed.
func signingKeyLoaded(keys []jwks.KeyInfo, now time.Time) bool {
	for _, k := range keys {
		if k.State == jwks.StateActive || (k.State == jwks.StateNext && !k.ActivateAt.After(now)) {
			return true
		}
	}
	return false
}

// observe creates Main's metrics and readiness check and attaches the
// metrics to the identity events. Run calls it once the keyring is
// loaded.
func (m *Main) observe() {
	m.metrics = newMetrics(m.app.Store, m.app.Hasher, m.keyring, m.Logger)
	m.app.Events.attach(m.metrics)
	if a := m.app.Audit; a != nil {
		m.metrics.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "users_core", Name: "audit_events_dropped_total",
			Help: "Audit events not stored (queue full or write failed); the log still has them.",
		}, func() float64 { return float64(a.Dropped()) }))
	}
	m.readiness = newReadiness(m.Config.UsersCore, m.app.Store.Ping, m.keyring, m.Logger)
}
