package jwks

import (
	"context"
	"crypto"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// RemoteKeySource defaults and limits.
const (
	// DefaultRemoteMinTTL is the shortest time a JWKS is cached.
	DefaultRemoteMinTTL = 5 * time.Minute
	// DefaultRemoteMaxTTL is the longest time a JWKS is cached.
	DefaultRemoteMaxTTL = 24 * time.Hour
	// DefaultRemoteTTL applies when the response has no usable max-age.
	DefaultRemoteTTL = time.Hour
	// DefaultRemoteMissInterval is the least time between two refreshes
	// caused by unknown kids.
	DefaultRemoteMissInterval = 5 * time.Minute
	// DefaultRemoteHTTPTimeout is the timeout of the default HTTP client.
	DefaultRemoteHTTPTimeout = 10 * time.Second
	// maxRemoteBody bounds a JWKS or discovery response: real ones are a
	// few KiB, and a hostile issuer must not make us buffer more.
	maxRemoteBody = 1 << 20
	// fetchDeadline bounds one refresh (discovery and JWKS) whatever the
	// HTTP client's settings, so waiters are never stuck behind it.
	fetchDeadline = 30 * time.Second
	// minLoopDelay keeps the background loop from spinning on odd clocks.
	minLoopDelay = time.Second
)

// RemoteConfig configures NewRemoteKeySource.
type RemoteConfig struct {
	// Issuer is the trusted issuer's exact iss value.
	Issuer string
	// JWKSURI is the issuer's JWKS URL. When empty it is discovered from
	// Issuer + "/.well-known/openid-configuration", whose issuer member
	// must equal Issuer exactly.
	JWKSURI string
	// HTTPClient fetches the documents (default: a client with a 10 s
	// timeout).
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MinTTL and MaxTTL clamp the response's Cache-Control max-age
	// (defaults 5 min and 24 h); DefaultTTL applies without a usable
	// max-age (default 1 h). no-cache and no-store count as max-age=0.
	MinTTL, MaxTTL, DefaultTTL time.Duration
	// MissInterval is the least time between two refreshes caused by an
	// unknown kid (default 5 min): a stream of tokens with made-up kids
	// must not turn into a stream of requests to the issuer.
	MissInterval time.Duration
	// Logger receives fetch failures and skipped keys (default: none).
	Logger zerolog.Logger
}

// RemoteStats are counters for metrics.
type RemoteStats struct {
	Fetches     int64     // refresh attempts (discovery and JWKS)
	Failures    int64     // failed attempts
	LastSuccess time.Time // zero before the first success
	LastError   string    // of the last failure, "" after a success
	Keys        int       // usable keys in the cache
	ExpiresAt   time.Time // when the cached set is due for refresh
}

// RemoteKeySource is a KeySource for another issuer's keys, read from its
// JWKS over HTTP and cached. The cache honours Cache-Control max-age
// (clamped to [MinTTL, MaxTTL]); Start refreshes it in the background
// shortly before expiry and retries failures with backoff. Without Start,
// Key refreshes lazily: a stale cache is refreshed in the background while
// the cached keys keep answering. The last good keys are never discarded:
// during an issuer outage they keep verifying. An unknown kid causes at
// most one refresh per MissInterval (concurrent callers share it). A
// RemoteKeySource is safe for concurrent use.
type RemoteKeySource struct {
	issuer       string
	client       *http.Client
	now          func() time.Time
	minTTL       time.Duration
	maxTTL       time.Duration
	defaultTTL   time.Duration
	missInterval time.Duration
	log          zerolog.Logger

	cur atomic.Pointer[remoteSet]

	fetches  atomic.Int64
	failures atomic.Int64

	mu          sync.Mutex
	jwksURI     string // configured or discovered
	flight      *fetchCall
	lastMiss    time.Time // start of the last unknown-kid refresh
	retryAt     time.Time // no lazy refresh before this after a failure
	failStreak  int
	lastSuccess time.Time
	lastErr     string
	started     bool
}

// remoteSet is one fetched, parsed JWKS.
type remoteSet struct {
	keys      map[string]*rsa.PublicKey
	fetchedAt time.Time
	expiresAt time.Time
	etag      string
}

// fetchCall is one refresh in flight, shared by everyone who waits for it.
type fetchCall struct {
	done chan struct{}
	err  error
}

// NewRemoteKeySource returns a RemoteKeySource for cfg. It fetches nothing
// until Start, Refresh or the first Key.
func NewRemoteKeySource(cfg RemoteConfig) *RemoteKeySource {
	r := &RemoteKeySource{
		issuer:       cfg.Issuer,
		client:       cfg.HTTPClient,
		now:          orNow(cfg.Now),
		minTTL:       orDuration(cfg.MinTTL, DefaultRemoteMinTTL),
		maxTTL:       orDuration(cfg.MaxTTL, DefaultRemoteMaxTTL),
		defaultTTL:   orDuration(cfg.DefaultTTL, DefaultRemoteTTL),
		missInterval: orDuration(cfg.MissInterval, DefaultRemoteMissInterval),
		log:          cfg.Logger.With().Str("iss", cfg.Issuer).Logger(),
		jwksURI:      cfg.JWKSURI,
	}
	if r.client == nil {
		r.client = &http.Client{Timeout: DefaultRemoteHTTPTimeout}
	}
	if r.maxTTL < r.minTTL {
		r.maxTTL = r.minTTL
	}
	return r
}

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Key returns the issuer's key for kid. Before the first successful fetch
// it fetches (callers share one request; after a failure, not again until
// the backoff passes) and fails with an error matching ErrKeysUnavailable.
// An unknown kid triggers one synchronous refresh if none was made for a
// miss within MissInterval; otherwise, or if the kid is still unknown, the
// error matches ErrUnknownKey.
func (r *RemoteKeySource) Key(ctx context.Context, kid string) (crypto.PublicKey, string, error) {
	now := r.now()
	set := r.cur.Load()
	if set == nil {
		err := r.initialFetch(ctx, now)
		if set = r.cur.Load(); set == nil {
			return nil, "", fmt.Errorf("%w: %s: %v", ErrKeysUnavailable, r.issuer, err)
		}
	} else if !now.Before(set.expiresAt) {
		r.refreshInBackground(now)
	}
	if k := set.keys[kid]; k != nil {
		return k, AlgRS256, nil
	}
	c := r.missRefresh(now)
	if c == nil {
		return nil, "", ErrUnknownKey
	}
	err := c.wait(ctx)
	if k := r.cur.Load().keys[kid]; k != nil {
		return k, AlgRS256, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s: kid not cached and refresh failed: %v", ErrKeysUnavailable, r.issuer, err)
	}
	return nil, "", ErrUnknownKey
}

// Refresh fetches the JWKS now (or joins a fetch in flight) and waits for
// it. Use it to fail fast at startup; Key and Start do not need it.
func (r *RemoteKeySource) Refresh(ctx context.Context) error {
	r.mu.Lock()
	c := r.startFetchLocked()
	r.mu.Unlock()
	return c.wait(ctx)
}

// Start keeps the cache fresh in the background until ctx is done: it
// fetches at once, then shortly before each expiry, and after a failure
// retries with exponential backoff (1 s doubling up to MinTTL, jittered),
// keeping the last good keys. Calling Start again does nothing.
func (r *RemoteKeySource) Start(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return
	}
	r.started = true
	go r.loop(ctx)
}

func (r *RemoteKeySource) loop(ctx context.Context) {
	for {
		delay := r.nextDelay()
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if err := r.Refresh(ctx); err != nil && ctx.Err() != nil {
			return
		}
	}
}

// nextDelay is how long the background loop sleeps before the next fetch.
func (r *RemoteKeySource) nextDelay() time.Duration {
	now := r.now()
	r.mu.Lock()
	streak, retryAt := r.failStreak, r.retryAt
	r.mu.Unlock()
	if streak > 0 {
		return max(retryAt.Sub(now), minLoopDelay)
	}
	set := r.cur.Load()
	if set == nil {
		return 0
	}
	// Refresh a tenth of the lifetime (at most a minute) before expiry.
	ahead := min(set.expiresAt.Sub(set.fetchedAt)/10, time.Minute)
	return max(set.expiresAt.Add(-ahead).Sub(now), minLoopDelay)
}

// initialFetch runs (or joins) the first fetch unless a failed one is
// still backing off.
func (r *RemoteKeySource) initialFetch(ctx context.Context, now time.Time) error {
	r.mu.Lock()
	if r.flight == nil && now.Before(r.retryAt) {
		err := errors.New(r.lastErr)
		r.mu.Unlock()
		return err
	}
	c := r.startFetchLocked()
	r.mu.Unlock()
	return c.wait(ctx)
}

// refreshInBackground starts a refresh of a stale cache unless one is
// running or a failed one is backing off.
func (r *RemoteKeySource) refreshInBackground(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.flight == nil && !now.Before(r.retryAt) {
		r.startFetchLocked()
	}
}

// missRefresh returns the refresh an unknown kid may wait for: the one in
// flight, or a new one if none was started for a miss within
// MissInterval; nil when the kid must be refused without asking.
func (r *RemoteKeySource) missRefresh(now time.Time) *fetchCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.flight != nil {
		return r.flight
	}
	if !r.lastMiss.IsZero() && now.Sub(r.lastMiss) < r.missInterval {
		return nil
	}
	r.lastMiss = now
	return r.startFetchLocked()
}

// startFetchLocked starts a fetch unless one is in flight, and returns it.
// The fetch runs on its own context so one impatient caller cannot cancel
// it for the others; fetchDeadline bounds it.
func (r *RemoteKeySource) startFetchLocked() *fetchCall {
	if r.flight != nil {
		return r.flight
	}
	c := &fetchCall{done: make(chan struct{})}
	r.flight = c
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), fetchDeadline)
		defer cancel()
		c.err = r.fetch(ctx)
		r.mu.Lock()
		r.flight = nil
		r.mu.Unlock()
		close(c.done)
	}()
	return c
}

func (c *fetchCall) wait(ctx context.Context) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fetch performs one refresh and records its outcome.
func (r *RemoteKeySource) fetch(ctx context.Context) error {
	r.fetches.Add(1)
	err := r.fetchJWKS(ctx)
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failures.Add(1)
		r.failStreak++
		r.retryAt = now.Add(r.backoff(r.failStreak))
		r.lastErr = err.Error()
		r.log.Warn().Err(err).Int("failures_in_a_row", r.failStreak).Msg("jwks: refreshing remote JWKS failed; keeping the last good keys")
		return err
	}
	r.failStreak, r.retryAt, r.lastErr, r.lastSuccess = 0, time.Time{}, "", now
	return nil
}

// backoff is 1 s doubling per failure up to MinTTL, minus up to 20% jitter
// so that many nodes do not retry in step.
func (r *RemoteKeySource) backoff(streak int) time.Duration {
	d := r.minTTL
	if streak < 20 {
		d = min(time.Second<<(streak-1), r.minTTL)
	}
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

func (r *RemoteKeySource) fetchJWKS(ctx context.Context) error {
	r.mu.Lock()
	uri := r.jwksURI
	r.mu.Unlock()
	if uri == "" {
		var err error
		if uri, err = r.discover(ctx); err != nil {
			return err
		}
		r.mu.Lock()
		r.jwksURI = uri
		r.mu.Unlock()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return fmt.Errorf("jwks_uri %q: %w", uri, err)
	}
	req.Header.Set("Accept", "application/json")
	prev := r.cur.Load()
	if prev != nil && prev.etag != "" {
		req.Header.Set("If-None-Match", prev.etag)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	now := r.now()
	ttl := r.ttl(resp.Header)
	// 304 can only answer our own If-None-Match: the cached keys are
	// still current.
	if resp.StatusCode == http.StatusNotModified && prev != nil && prev.etag != "" {
		r.cur.Store(&remoteSet{keys: prev.keys, fetchedAt: now, expiresAt: now.Add(ttl), etag: prev.etag})
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("fetching JWKS: status %d", resp.StatusCode)
	}
	body, err := readLimited(resp.Body)
	if err != nil {
		return fmt.Errorf("fetching JWKS: %w", err)
	}
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		return err
	}
	for _, s := range skipped {
		r.log.Debug().Str("reason", s).Msg("jwks: skipped a key of the remote JWKS")
	}
	r.cur.Store(&remoteSet{keys: keys, fetchedAt: now, expiresAt: now.Add(ttl), etag: resp.Header.Get("ETag")})
	return nil
}

// discover reads the issuer's OpenID configuration and returns its
// jwks_uri.
func (r *RemoteKeySource) discover(ctx context.Context) (string, error) {
	iss, err := url.Parse(r.issuer)
	if err != nil || (iss.Scheme != "https" && iss.Scheme != "http") || iss.Host == "" {
		return "", fmt.Errorf("issuer %q is not an http(s) URL, so jwks_uri cannot be discovered", r.issuer)
	}
	where := strings.TrimSuffix(r.issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("discovery: status %d", resp.StatusCode)
	}
	body, err := readLimited(resp.Body)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &meta); err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	// OpenID Connect Discovery 1.0 section 4.3: a document for another
	// issuer must not be used, or one host could vouch for another's keys.
	if meta.Issuer != r.issuer {
		return "", fmt.Errorf("discovery: document is for issuer %q, not %q", clip(meta.Issuer), r.issuer)
	}
	u, err := url.Parse(meta.JWKSURI)
	// Plain http only for an http issuer (a local or test deployment).
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && iss.Scheme == "http")) {
		return "", fmt.Errorf("discovery: jwks_uri %q is not an acceptable URL", clip(meta.JWKSURI))
	}
	return meta.JWKSURI, nil
}

func readLimited(body io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(body, maxRemoteBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxRemoteBody {
		return nil, fmt.Errorf("response larger than %d bytes", maxRemoteBody)
	}
	return b, nil
}

// ttl is how long a response may be cached: Cache-Control max-age less
// Age, clamped to [MinTTL, MaxTTL]; DefaultTTL without a usable max-age.
func (r *RemoteKeySource) ttl(h http.Header) time.Duration {
	secs, ok := maxAge(h.Values("Cache-Control"))
	if !ok {
		return r.defaultTTL
	}
	if age, err := strconv.ParseInt(strings.TrimSpace(h.Get("Age")), 10, 64); err == nil && age > 0 {
		secs -= age
	}
	d := time.Duration(max(secs, 0)) * time.Second
	return min(max(d, r.minTTL), r.maxTTL)
}

// maxAge returns the max-age of Cache-Control field values in seconds
// (capped to a year), 0 for no-cache or no-store, and false when there is
// no usable directive.
func maxAge(values []string) (int64, bool) {
	var (
		secs  int64
		found bool
	)
	for _, v := range values {
		for d := range strings.SplitSeq(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return 0, true
			case "max-age":
				if found {
					continue // the first one counts
				}
				arg = strings.Trim(strings.TrimSpace(arg), `"`)
				n, err := strconv.ParseUint(arg, 10, 63)
				if err != nil {
					if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange && arg != "" {
						n = 1 << 62 // absurdly large: clamped below
					} else {
						return 0, false
					}
				}
				secs, found = int64(min(n, 365*24*3600)), true
			}
		}
	}
	return secs, found
}

// Stats returns counters for metrics.
func (r *RemoteKeySource) Stats() RemoteStats {
	s := RemoteStats{Fetches: r.fetches.Load(), Failures: r.failures.Load()}
	if set := r.cur.Load(); set != nil {
		s.Keys, s.ExpiresAt = len(set.keys), set.expiresAt
	}
	r.mu.Lock()
	s.LastSuccess, s.LastError = r.lastSuccess, r.lastErr
	r.mu.Unlock()
	return s
}

// parseJWKS reads a JWK Set defensively and returns its usable RS256
// verification keys by kid, with a note for each key it skipped. A key is
// used only if kty is "RSA", use is "sig" or absent, alg is "RS256" or
// absent, key_ops (if present) includes "verify", the kid is present and
// made of [A-Za-z0-9_=+-] (at most 128 characters), the modulus has 2048 to
// 8192 bits and the exponent is sane (see JWK.RSAPublicKey). A kid listed
// twice is skipped both times: which key it names would be a guess. A set
// with no usable key is an error, so it never replaces good keys.
func parseJWKS(body []byte) (map[string]*rsa.PublicKey, []string, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, nil, fmt.Errorf("JWKS is not a JSON object with keys: %w", err)
	}
	keys := map[string]*rsa.PublicKey{}
	dup := map[string]bool{}
	var skipped []string
	for i, raw := range doc.Keys {
		j, err := decodeJWK(raw)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		if !validKID(j.Kid) {
			skipped = append(skipped, fmt.Sprintf("key %d: missing or unusable kid", i))
			continue
		}
		pub, err := j.RSAPublicKey()
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %s: %v", j.Kid, err))
			continue
		}
		if _, seen := keys[j.Kid]; seen || dup[j.Kid] {
			delete(keys, j.Kid)
			dup[j.Kid] = true
			skipped = append(skipped, fmt.Sprintf("key %s: kid listed more than once", j.Kid))
			continue
		}
		keys[j.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, skipped, errors.New("JWKS has no usable RS256 key")
	}
	return keys, skipped, nil
}

// decodeJWK reads the members we use with exact (case-sensitive) names;
// key_ops, when present, must allow "verify".
func decodeJWK(raw json.RawMessage) (JWK, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return JWK{}, errors.New("not a JSON object")
	}
	var j JWK
	for name, dst := range map[string]*string{"kty": &j.Kty, "use": &j.Use, "alg": &j.Alg, "kid": &j.Kid, "n": &j.N, "e": &j.E} {
		v, ok := m[name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return JWK{}, fmt.Errorf("%s is not a string", name)
		}
	}
	if v, ok := m["key_ops"]; ok {
		var ops []string
		if err := json.Unmarshal(v, &ops); err != nil {
			return JWK{}, errors.New("key_ops is not an array of strings")
		}
		verify := false
		for _, op := range ops {
			verify = verify || op == "verify"
		}
		if !verify {
			return JWK{}, errors.New("key_ops does not allow verify")
		}
	}
	return j, nil
}
