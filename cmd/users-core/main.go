// Command users-core is a SIP REGISTER authenticator with its own user
// identity service. See README.md for the CLI and configuration.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	sipgo "github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/identity/httpapi"
	"github.com/rvoip/users-core/jwks"
	"github.com/rvoip/users-core/sip"
	"github.com/rvoip/users-core/store"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// Version returns the build's version: the ldflags value, else the module
// version or VCS revision recorded by the Go toolchain.
func Version() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "devel-" + s.Value[:12]
		}
	}
	return "devel"
}

func main() {
	atLeastTwoProcs(os.Getenv("GOMAXPROCS"))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(newCLI(os.Stdin, os.Stdout, os.Stderr, os.Getenv).run(ctx, os.Args[1:]))
}

// atLeastTwoProcs runs Go code on two OS threads at once even when the
// process may use only one CPU (taskset, a one-CPU container), unless the
// operator set GOMAXPROCS. With one, a goroutine blocked in a system call
// (the SQLite commit's fsync) holds the only processor until the runtime's
// monitor takes it back, up to 10 ms later, and the whole registrar stalls
// behind each commit: pinned to one core it failed 5.9% of 1,000 REGISTERs/s
// at half a core busy, and with two it served 2,000/s without a failure
// (testdata/bench/register.sh, users-core under taskset -c 0).
func atLeastTwoProcs(env string) {
	if env == "" && runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
}

// App is an opened users-core: configuration, store and user service. The
// CLI's user commands use it directly; Main adds the listeners.
type App struct {
	Config  Config
	Logger  zerolog.Logger
	Store   store.Store
	Users   *identity.Service
	Hasher  *identity.Hasher
	Sealer  *identity.Sealer
	DataKey []byte
	// Events forwards the service's events to receivers attached later
	// (Main's metrics).
	Events *eventHub
	// Audit writes the security events to the store (audit.go).
	Audit        *identity.Auditor
	auditDropped uint64 // Audit.Dropped() at the last maintainAudit

	regOnce   sync.Once
	regulator *identity.Regulator // made by Regulator
}

// OpenApp creates the data directory, loads or creates the data key, opens
// the store (applying migrations) and builds the user service. It leaves
// nothing half-written when it fails.
func OpenApp(ctx context.Context, cfg Config, logger zerolog.Logger) (*App, error) {
	u := cfg.UsersCore
	if strings.HasPrefix(u.DatabaseURL, "sqlite:") || u.DataKey == "" {
		if err := os.MkdirAll(u.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("cannot create data directory %s: %w", u.DataDir, unwrapPathErr(err))
		}
	}
	key, created, err := loadDataKey(u)
	if err != nil {
		return nil, err
	}
	undo := func() {
		if created {
			os.Remove(u.DataKeyFile)
		}
	}
	st, err := store.Open(ctx, u.DatabaseURL)
	if err != nil {
		undo()
		return nil, fmt.Errorf("cannot open database %s: %w", redactURL(u.DatabaseURL), err)
	}
	if err := checkDataKey(ctx, st, key, u.DataKeyFile); err != nil {
		st.Close()
		undo()
		return nil, err
	}
	params := identity.Argon2Params{
		Memory:  u.Password.Argon2MemoryCost,
		Time:    u.Password.Argon2TimeCost,
		Threads: u.Password.Argon2Parallelism,
		SaltLen: identity.DefaultArgon2Params().SaltLen,
		KeyLen:  identity.DefaultArgon2Params().KeyLen,
	}
	fail := func(err error) (*App, error) {
		st.Close()
		undo()
		return nil, err
	}
	hasher, err := identity.NewHasher(params, u.Password.MaxConcurrentHashes)
	if err != nil {
		return fail(fmt.Errorf("config: password: %w", err))
	}
	sealer, err := identity.NewSealer(key)
	if err != nil {
		return fail(err)
	}
	events := &eventHub{}
	audit, auditSink := newAuditor(st, logger)
	events.attach(auditSink)
	svc, err := identity.NewService(identity.ServiceConfig{
		Store:   st,
		Hasher:  hasher,
		Policy:  identity.PasswordPolicy{MinLength: u.Password.MinLength, MaxLength: u.Password.MaxLength},
		Sealer:  sealer,
		Realms:  u.Domains,
		Refresh: st,
		Events:  events,
		// The credential cache (issue 7): off when either setting is 0.
		CacheEntries:       cacheEntries(u.Cache),
		CacheCheckInterval: cacheInterval(u.Cache),
	})
	if err != nil {
		return fail(fmt.Errorf("config: password: %w", err))
	}
	app := &App{Config: cfg, Logger: logger, Store: st, Users: svc, Hasher: hasher, Sealer: sealer, DataKey: key, Events: events}
	app.Audit = audit
	go audit.Run(context.Background()) // stopped by App.Close
	return app, nil
}

// Close writes the queued audit events and closes the store.
func (a *App) Close() error { return errors.Join(a.closeAudit(), a.Store.Close()) }

// seconds converts a configured number of seconds.
func seconds(n int) time.Duration { return time.Duration(n) * time.Second }

// cacheInterval converts cache.check_interval_ms for identity, where a
// negative interval (here 0) turns the in-memory copies off.
func cacheInterval(c CacheConfig) time.Duration {
	if c.CheckIntervalMS == 0 {
		return -1
	}
	return time.Duration(c.CheckIntervalMS) * time.Millisecond
}

// cacheEntries converts cache.credential_entries for identity, where a
// negative bound (here 0) turns the credential cache off.
func cacheEntries(c CacheConfig) int {
	if c.CredentialEntries == 0 {
		return -1
	}
	return c.CredentialEntries
}

// OpenKeyring loads the signing keys (creating the first on an empty
// database).
func (a *App) OpenKeyring(ctx context.Context) (*jwks.Keyring, error) {
	j := a.Config.UsersCore.JWT
	kr, err := jwks.NewKeyring(ctx, jwks.KeyringConfig{
		Store:          a.Store,
		Sealer:         a.Sealer,
		RotationPeriod: seconds(j.KeyRotationSeconds),
		LeadTime:       seconds(j.KeyLeadTimeSeconds),
		// A retired key stays published until every token it signed has
		// expired, leeway included.
		RetireAfter: seconds(j.AccessTTLSeconds + j.LeewaySeconds),
		Logger:      a.Logger.With().Str("component", "keyring").Logger(),
	})
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	return kr, nil
}

// Regulator returns the brute-force regulator configured for the App. It
// is one per App: it keeps the active locks in memory, and a lock placed by
// the HTTP side must be seen by the SIP side at once, and the reverse.
func (a *App) Regulator() *identity.Regulator {
	a.regOnce.Do(func() {
		l := a.Config.UsersCore.Lockout
		a.regulator = identity.NewRegulator(a.Store, identity.RegulatorConfig{
			UserMaxFailures: l.UserMaxFailures, UserWindow: seconds(l.UserWindowSeconds), UserLock: seconds(l.UserLockSeconds),
			AddrMaxFailures: l.AddrMaxFailures, AddrWindow: seconds(l.AddrWindowSeconds), AddrLock: seconds(l.AddrLockSeconds),
			CheckInterval: cacheInterval(a.Config.UsersCore.Cache),
		})
	})
	return a.regulator
}

// Tokens returns the token service signing with kr.
func (a *App) Tokens(kr *jwks.Keyring, reg *identity.Regulator) (*identity.Tokens, error) {
	j := a.Config.UsersCore.JWT
	return identity.NewTokens(identity.TokenConfig{
		Issuer:          j.Issuer,
		Audience:        j.Audience,
		AccessTTL:       seconds(j.AccessTTLSeconds),
		RefreshIdleTTL:  seconds(j.RefreshTTLSeconds),
		RefreshMaxTTL:   seconds(j.RefreshAbsoluteTTLSeconds),
		RefreshGrace:    seconds(j.RefreshGraceSeconds),
		SuccessorSealer: a.Sealer,
	}, a.Users, a.Store, kr, reg)
}

// Verifier returns a token verifier accepting our own tokens for audience
// (through kr, in-process) and, when withTrusted, the trusted issuers'
// tokens through their remote JWKS (sources started on ctx).
func (a *App) Verifier(ctx context.Context, kr *jwks.Keyring, audience string, withTrusted bool) (*jwks.Verifier, error) {
	j := a.Config.UsersCore.JWT
	issuers := []jwks.IssuerConfig{{Name: "users-core", Issuer: j.Issuer, Audience: audience, Keys: kr}}
	if withTrusted {
		names := make([]string, 0, len(a.Config.Auth.TrustedIssuers))
		for n := range a.Config.Auth.TrustedIssuers {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			ti := a.Config.Auth.TrustedIssuers[n]
			src := jwks.NewRemoteKeySource(jwks.RemoteConfig{
				Issuer: ti.Issuer, JWKSURI: ti.JWKSURI,
				Logger: a.Logger.With().Str("component", "jwks").Str("issuer", n).Logger(),
			})
			src.Start(ctx)
			issuers = append(issuers, jwks.IssuerConfig{Name: n, Issuer: ti.Issuer, Audience: ti.Audience, Keys: src, TokenTypes: ti.TokenTypes})
		}
	}
	return jwks.NewVerifier(jwks.VerifierConfig{Issuers: issuers, Leeway: seconds(j.LeewaySeconds)})
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// loadDataKey returns the AES-256 data key that seals HA1 values: from the
// configuration, else from the key file, else a new key written to the key
// file (mode 0600, atomically). created reports the last case.
func loadDataKey(u UsersCoreConfig) (key []byte, created bool, err error) {
	if u.DataKey != "" {
		key, _ = hex.DecodeString(u.DataKey) // checked by Config.finish
		return key, false, nil
	}
	data, err := os.ReadFile(u.DataKeyFile)
	if err == nil {
		key, err = hex.DecodeString(strings.TrimSpace(string(data)))
		if err != nil || len(key) != 32 {
			return nil, false, fmt.Errorf("data key file %s is not 64 hex digits", u.DataKeyFile)
		}
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("cannot read data key %s: %w", u.DataKeyFile, unwrapPathErr(err))
	}
	key, err = identity.GenerateDataKey()
	if err != nil {
		return nil, false, err
	}
	if err := writeFileAtomic(u.DataKeyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, false, fmt.Errorf("cannot write data key %s: %w", u.DataKeyFile, unwrapPathErr(err))
	}
	return key, true, nil
}

// checkDataKey makes sure key is the key this database's sealed values were
// made with: the first start records an HMAC of a fixed label under the
// key; later starts compare. A lost or swapped key file would otherwise
// make every HA1 unreadable without a word.
func checkDataKey(ctx context.Context, st store.Store, key []byte, file string) error {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("users-core data key check v1"))
	want := mac.Sum(nil)
	got, err := st.Secret(ctx, "data_key_check", func() ([]byte, error) { return want, nil })
	if err != nil {
		return fmt.Errorf("cannot check data key: %w", err)
	}
	if !hmac.Equal(got, want) {
		return fmt.Errorf("the data key (%s or data_key) is not the key this database was created with; restore the original key", file)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it into place, so readers never see a partial file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}

// Main is the running server: the App plus its listeners. Tests run the
// real Main on port 0.
type Main struct {
	Config    Config
	ReadyFile string
	Logger    zerolog.Logger
	// Notice receives the one-time admin password on first start.
	Notice io.Writer

	app      *App
	keyring  *jwks.Keyring
	tokens   *identity.Tokens
	sipSrv   *sip.Server
	addrs    map[string]string
	stopBg   context.CancelFunc
	started  time.Time
	httpSrv  *http.Server
	httpLn   net.Listener
	wg       sync.WaitGroup
	closeMu  sync.Mutex
	closed   bool
	serveErr chan error

	metrics   *metrics // metrics.go
	debugSrv  *http.Server
	readiness *readiness // GET /ready

	// wrapBindings, when a test sets it, wraps the registrar's binding
	// store (a slow store, for the overload answers).
	wrapBindings func(sip.BindingStore) sip.BindingStore
}

// Run opens the App, creates the first admin on an empty database, opens
// every listener, writes the ready file and returns; serving goes on until
// Close.
func (m *Main) Run(ctx context.Context) (err error) {
	m.started = time.Now()
	m.serveErr = make(chan error, 4)
	m.app, err = OpenApp(ctx, m.Config, m.Logger)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	password, err := m.app.Users.EnsureAdmin(ctx)
	if err != nil {
		return fmt.Errorf("cannot create the first admin: %w", err)
	}
	if password != "" && m.Notice != nil {
		fmt.Fprintf(m.Notice, "users-core: created user \"admin\" with password %s\n"+
			"users-core: it is shown only this once; change it with: users-core user passwd admin\n", password)
	}
	bg, stopBg := context.WithCancel(context.Background())
	m.stopBg = stopBg
	if m.keyring, err = m.app.OpenKeyring(ctx); err != nil {
		return err
	}
	reg := m.app.Regulator()
	if m.tokens, err = m.app.Tokens(m.keyring, reg); err != nil {
		return err
	}
	apiVerifier, err := m.app.Verifier(bg, m.keyring, m.Config.UsersCore.JWT.APIAudience, false)
	if err != nil {
		return err
	}
	m.observe()
	m.background(bg, func(ctx context.Context) { m.keyring.Run(ctx, time.Minute) })
	m.background(bg, func(ctx context.Context) { m.maintain(ctx, reg) })

	ready := map[string]string{}
	if addr := m.Config.UsersCore.APIBindAddress; addr != "" && addr != "off" {
		m.httpLn, err = net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("http: cannot listen on %s: %w", addr, err)
		}
		apiKeys := m.app.APIKeys()
		m.background(bg, func(ctx context.Context) { apiKeys.Run(ctx, 10*time.Second) })
		h := m.Config.UsersCore.HTTP
		proxies, _ := parsePrefixes(h.TrustedProxies) // checked by Config.finish
		api := httpapi.New(httpapi.Config{
			Version: Version(), Started: m.started, Logger: m.Logger,
			Users: m.app.Users, Tokens: m.tokens, Verifier: m.metrics.verifier("http", apiVerifier),
			JWKS: jwks.Handler(m.keyring), Issuer: m.Config.UsersCore.JWT.Issuer,
			PublicURL: h.PublicURL, CORSOrigins: h.CORSOrigins, TrustedProxies: proxies,
			Metrics: m.metrics.handler(), Ready: m.readiness.check,
			APIKeys: apiKeys, Bindings: m.app.Store, Events: m.app.Events, Audit: m.app.Store,
		})
		m.httpSrv = &http.Server{
			Handler:           m.metrics.instrument(api),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       15 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    32 << 10,
			ErrorLog:          newStdLogger(m.Logger, "http"),
		}
		ready["http"] = m.httpLn.Addr().String()
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := m.httpSrv.Serve(m.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.serveErr <- fmt.Errorf("http: %w", err)
			}
		}()
		m.Logger.Info().Str("addr", ready["http"]).Msg("http listening")
	}
	if sc := m.Config.UsersCore.SIP; on(sc.UDP) || on(sc.TCP) || on(sc.TLS) || on(sc.WS) || on(sc.WSS) {
		if m.sipSrv, err = m.newSIPServer(ctx, bg); err != nil {
			return err
		}
		m.metrics.sipFilter(m.sipSrv.FilterStats)
		var tlsConf *tls.Config
		if on(sc.TLS) || on(sc.WSS) {
			cert, err := tls.LoadX509KeyPair(sc.TLSCert, sc.TLSKey)
			if err != nil {
				return fmt.Errorf("sip: loading the TLS certificate: %w", err)
			}
			tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
		bound, err := m.sipSrv.Listen(sip.Listeners{UDP: sc.UDP, TCP: sc.TCP, TLS: sc.TLS, WS: sc.WS, WSS: sc.WSS, TLSConfig: tlsConf})
		if err != nil {
			return err
		}
		for k, v := range bound {
			ready["sip_"+k] = v
			m.Logger.Info().Str("transport", k).Str("addr", v).Msg("sip listening")
		}
	}
	if addr := m.Config.UsersCore.DebugListen; on(addr) {
		if ready["debug"], err = m.serveDebug(addr); err != nil {
			return err
		}
	}
	m.addrs = ready
	m.readiness.listening(ready)
	if m.ReadyFile != "" {
		data, _ := json.Marshal(ready)
		if err := writeFileAtomic(m.ReadyFile, append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("cannot write ready file %s: %w", m.ReadyFile, unwrapPathErr(err))
		}
	}
	m.Logger.Info().Str("version", Version()).Str("database", redactURL(m.Config.UsersCore.DatabaseURL)).
		Strs("domains", m.Config.UsersCore.Domains).Msg("users-core ready")
	return nil
}

func on(addr string) bool { return addr != "" && addr != "off" }

// tokenSubjects looks up the subjects of Bearer REGISTERs (user IDs)
// through the Service's cache, so a WebRTC phone refreshing its
// registration costs no database read (see identity.Service.CachedUser).
type tokenSubjects struct{ svc *identity.Service }

func (t tokenSubjects) User(ctx context.Context, id string) (*identity.User, error) {
	return t.svc.CachedUser(ctx, id)
}

// newSIPServer builds the registrar from the configuration.
func (m *Main) newSIPServer(ctx, bg context.Context) (*sip.Server, error) {
	u := m.Config.UsersCore
	sc := u.SIP
	secret, err := m.app.Store.Secret(ctx, "sip_nonce_key", func() ([]byte, error) {
		b := make([]byte, 32)
		_, err := rand.Read(b)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("sip: nonce key: %w", err)
	}
	algs, _ := sip.ParseAlgorithms(strings.Join(sc.DigestAlgorithms, ",")) // checked by Config.finish
	domainAlgs := map[string][]identity.DigestAlgorithm{}
	for d, dc := range sc.Domains {
		domainAlgs[strings.ToLower(d)], _ = sip.ParseAlgorithms(strings.Join(dc.DigestAlgorithms, ","))
	}
	var rules []sip.ClientRule
	if sc.ClientRules != nil {
		rules = []sip.ClientRule{}
		for _, r := range sc.ClientRules {
			cr := sip.ClientRule{Name: r.Name, UserAgent: regexp.MustCompile(r.UserAgent), Bearer: r.Bearer}
			if len(r.DigestAlgorithms) > 0 {
				cr.Algorithms, _ = sip.ParseAlgorithms(strings.Join(r.DigestAlgorithms, ","))
			}
			rules = append(rules, cr)
		}
	}
	verifier, err := m.app.Verifier(bg, m.keyring, sc.Audience, true)
	if err != nil {
		return nil, err
	}
	node := u.NodeID
	if node == "" {
		node, _ = os.Hostname()
	}
	over := sip.OverLimitReject
	if sc.OverLimit == "drop-oldest" {
		over = sip.OverLimitDropOldest
	}
	var nonceCounts sip.NonceCountStore
	if sharedDatabase(u.DatabaseURL) {
		nonceCounts = m.app.Store // replay refused at every node, not only the one that saw the count
	}
	var bindings sip.BindingStore = m.app.Store
	if m.wrapBindings != nil {
		bindings = m.wrapBindings(bindings)
	}
	// sipgo refuses UDP messages larger than UDPMTUSize-200.
	sipgo.UDPMTUSize = sc.UDPMaxResponse + 200
	return sip.NewServer(sip.Config{
		Domains:               u.Domains,
		Algorithms:            algs,
		DomainAlgorithms:      domainAlgs,
		BearerChallenge:       sc.BearerChallenge,
		ClientRules:           rules,
		AuthzServer:           u.JWT.Issuer,
		NonceSecret:           secret,
		NonceLifetime:         seconds(sc.NonceLifetimeSeconds),
		NonceCounts:           nonceCounts,
		Credentials:           m.app.Users,
		Users:                 tokenSubjects{m.app.Users},
		Verifier:              m.metrics.verifier("sip", verifier),
		OwnIssuer:             "users-core",
		UsernameClaims:        sc.UsernameClaims,
		BindingsOutliveTokens: sc.BindingsOutliveTokens,
		Regulator:             auditLockouts(m.app.Regulator(), m.app.Events),
		Outcomes:              chainOutcomes(auditRegisterFailures(m.app.Audit), m.metrics.sipOutcome),
		Bindings:              bindings,
		RegisterTimeout:       seconds(sc.RegisterTimeoutSeconds),
		Policy: sip.Policy{MinExpires: sc.MinExpires, MaxExpires: sc.MaxExpires, DefaultExpires: sc.DefaultExpires,
			MaxContacts: sc.MaxContacts, OverLimit: over},
		Node:          node,
		ReadTimeout:   seconds(sc.ReadTimeoutSeconds),
		WriteTimeout:  seconds(sc.WriteTimeoutSeconds),
		MaxConnsPerIP: sc.MaxConnsPerIP,
		MaxInFlight:   sc.MaxInFlight,
		Filter:        sipFilter(sc),
		Logger:        m.Logger,
		NewID:         uuid.NewString,
	})
}

// background runs fn in a goroutine that Close waits for.
func (m *Main) background(ctx context.Context, fn func(context.Context)) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		fn(ctx)
	}()
}

// maintain prunes expired brute-force records, refresh tokens, bindings,
// shared nonce counts and audit events every few minutes.
func (m *Main) maintain(ctx context.Context, reg *identity.Regulator) {
	// The first pass waits a little: started with the listeners, it would
	// compete with start-up for the CPU and the single SQLite writer (a
	// large sweep of expired bindings after a long stop, say).
	select {
	case <-ctx.Done():
		return
	case <-time.After(10 * time.Second):
	}
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		if _, err := reg.Prune(ctx); err != nil && ctx.Err() == nil {
			m.Logger.Warn().Err(err).Msg("pruning login attempts")
		}
		if _, err := m.tokens.Prune(ctx); err != nil && ctx.Err() == nil {
			m.Logger.Warn().Err(err).Msg("pruning refresh tokens")
		}
		if _, err := m.app.Store.DeleteExpiredBindings(ctx, time.Now()); err != nil && ctx.Err() == nil {
			m.Logger.Warn().Err(err).Msg("sweeping expired bindings")
		}
		if sharedDatabase(m.Config.UsersCore.DatabaseURL) {
			if _, err := m.app.Store.DeleteExpiredNonceCounts(ctx, time.Now().Add(-nonceCountGrace)); err != nil && ctx.Err() == nil {
				m.Logger.Warn().Err(err).Msg("sweeping expired nonce counts")
			}
		}
		m.app.maintainAudit(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Keyring returns the signing keyring (nil before Run).
func (m *Main) Keyring() *jwks.Keyring { return m.keyring }

// Err returns a channel that receives a listener's fatal error.
func (m *Main) Err() <-chan error { return m.serveErr }

// HTTPAddr returns the bound HTTP address, or "" when it is off.
func (m *Main) HTTPAddr() string {
	if m.httpLn == nil {
		return ""
	}
	return m.httpLn.Addr().String()
}

// Addrs returns the bound addresses as the ready file lists them.
func (m *Main) Addrs() map[string]string { return m.addrs }

// SIPServer returns the SIP registrar (nil when every SIP listener is off).
func (m *Main) SIPServer() *sip.Server { return m.sipSrv }

// Close stops the listeners, letting in-flight requests finish for up to 5
// seconds, removes the ready file and closes the store.
func (m *Main) Close() error {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.readiness.listening(nil) // draining: tell load balancers first
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	if m.sipSrv != nil {
		// Stop taking REGISTERs and let those in flight finish first.
		if err := m.sipSrv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if m.httpSrv != nil {
		if err := m.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			m.httpSrv.Close()
		}
	} else if m.httpLn != nil {
		m.httpLn.Close()
	}
	if m.debugSrv != nil {
		m.debugSrv.Close()
	}
	if m.stopBg != nil {
		m.stopBg()
	}
	m.wg.Wait()
	if m.ReadyFile != "" {
		os.Remove(m.ReadyFile)
	}
	if m.app != nil {
		errs = append(errs, m.app.Close())
	}
	return errors.Join(errs...)
}

// redactURL hides a password in a database URL for logs and error
// messages: the userinfo's and any query parameter named like password
// (pgx reads password= and sslpassword=).
func redactURL(s string) string {
	s = passwordParamRE.ReplaceAllString(s, "${1}xxxxx")
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if c := strings.Index(rest[:at], ":"); c >= 0 {
				return s[:i+3] + rest[:c] + ":xxxxx" + rest[at:]
			}
		}
	}
	return s
}

var passwordParamRE = regexp.MustCompile(`(?i)([?&][a-z_]*password=)[^&#]*`)
