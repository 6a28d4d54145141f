package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/rvoip/users-core/sip"
)

// Config is the whole configuration of users-core. The TOML layout keeps
// that of the RVoIP users-core example: a [users_core] table with
// database_url and api_bind_address, [users_core.jwt], trusted issuers under
// [auth.trusted_issuers.NAME], and every other setting under [users_core.*].
//
// Precedence: command-line flag, then environment variable
// (USERS_CORE_<FLAG>), then the TOML file, then the defaults below.
type Config struct {
	UsersCore UsersCoreConfig `toml:"users_core"`
	Auth      AuthConfig      `toml:"auth"`
}

// UsersCoreConfig is the [users_core] table.
type UsersCoreConfig struct {
	// DatabaseURL names the store; empty means sqlite://<data_dir>/users.db.
	DatabaseURL string `toml:"database_url"`
	// APIBindAddress is the HTTP side-listener address; "off" disables it.
	APIBindAddress string `toml:"api_bind_address"`
	// DataDir holds the SQLite database and the data key (created 0700).
	DataDir string `toml:"data_dir"`
	// Domains are the SIP domains served; each is also a Digest realm.
	Domains []string `toml:"domains"`
	// DataKey is the hex AES-256 key that seals HA1 values at rest; empty
	// means the file DataKeyFile (created on first start, mode 0600).
	DataKey string `toml:"data_key"`
	// DataKeyFile defaults to <data_dir>/data.key.
	DataKeyFile string `toml:"data_key_file"`

	// NodeID names this node in bindings (the node holding a client's
	// flow); empty means the host name.
	NodeID string `toml:"node_id"`

	// DebugListen is the address of a net/http/pprof listener for
	// profiling; empty (the default) or "off" starts none. It has no
	// authentication: bind it to 127.0.0.1.
	DebugListen string `toml:"debug_listen"`

	Log      LogConfig      `toml:"log"`
	HTTP     HTTPConfig     `toml:"http"`
	SIP      SIPConfig      `toml:"sip"`
	JWT      JWTConfig      `toml:"jwt"`
	Password PasswordConfig `toml:"password"`
	Lockout  LockoutConfig  `toml:"lockout"`
	Audit    AuditConfig    `toml:"audit"`
	Cache    CacheConfig    `toml:"cache"`
}

// AuditConfig is [users_core.audit]: the security event trail.
type AuditConfig struct {
	// RetentionDays is how long audit events are kept; 0 keeps them
	// forever.
	RetentionDays int `toml:"retention_days"`
}

// CacheConfig is [users_core.cache]: the in-memory copies of Digest
// credentials, brute-force locks and the users with failed attempts that
// keep the database off the REGISTER path.
type CacheConfig struct {
	// CheckIntervalMS is how often, at most, a node asks the database
	// whether users, locks or failures changed, and so how long a change
	// made by another process takes to be seen; 0 turns the copies off.
	CheckIntervalMS int `toml:"check_interval_ms"`
	// CredentialEntries bounds the Digest answers kept; 0 turns the
	// credential cache off.
	CredentialEntries int `toml:"credential_entries"`
}

// HTTPConfig is [users_core.http].
type HTTPConfig struct {
	// PublicURL is the base URL clients reach the HTTP listener at, used in
	// discovery; empty means each request's own scheme and Host.
	PublicURL string `toml:"public_url"`
	// CORSOrigins are the browser origins allowed to call the login,
	// refresh and JWKS routes; empty allows any origin (no cookies are used).
	CORSOrigins []string `toml:"cors_origins"`
	// TrustedProxies are addresses or CIDR prefixes whose X-Forwarded-For
	// header is believed for the client address.
	TrustedProxies []string `toml:"trusted_proxies"`
}

// SIPConfig is [users_core.sip]: listeners, Digest and Bearer policy,
// registrar limits.
type SIPConfig struct {
	UDP     string `toml:"udp"` // listen address, or "off"
	TCP     string `toml:"tcp"`
	TLS     string `toml:"tls"`
	WS      string `toml:"ws"`
	WSS     string `toml:"wss"`
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// DigestAlgorithms in order of preference.
	DigestAlgorithms []string `toml:"digest_algorithms"`
	// BearerChallenge lists the transports whose 401 also carries a
	// Bearer challenge.
	BearerChallenge []string `toml:"bearer_challenge"`
	// Audience SIP Bearer tokens must carry.
	Audience string `toml:"audience"`
	// UsernameClaims map a trusted issuer's token to the SIP user.
	UsernameClaims        []string `toml:"username_claims"`
	BindingsOutliveTokens bool     `toml:"bindings_outlive_tokens"`
	NonceLifetimeSeconds  int      `toml:"nonce_lifetime_seconds"`
	MinExpires            int      `toml:"min_expires"`
	MaxExpires            int      `toml:"max_expires"`
	DefaultExpires        int      `toml:"default_expires"`
	MaxContacts           int      `toml:"max_contacts"`
	// OverLimit is "reject" or "drop-oldest".
	OverLimit           string `toml:"over_limit"`
	ReadTimeoutSeconds  int    `toml:"read_timeout_seconds"`
	WriteTimeoutSeconds int    `toml:"write_timeout_seconds"`
	MaxConnsPerIP       int    `toml:"max_conns_per_ip"`
	MaxInFlight         int    `toml:"max_in_flight"`
	// RegisterTimeoutSeconds bounds how long one REGISTER may wait for
	// the database and token keys before it is answered 503 with
	// Retry-After.
	RegisterTimeoutSeconds int `toml:"register_timeout_seconds"`
	// RatePerSource is the UDP datagrams per second one source IP may
	// send before parsing (0 turns the filter off); RateBurst how many
	// at once.
	RatePerSource int `toml:"rate_per_source"`
	RateBurst     int `toml:"rate_burst"`
	// DropUserAgents are substrings (case ignored) of scanners'
	// User-Agent values; their messages are dropped unanswered. Empty by
	// default; the README suggests a list.
	DropUserAgents []string `toml:"drop_user_agents"`
	// UDPMaxResponse is the largest response sent over UDP, in bytes.
	// The default is the largest UDP payload: a 200 must list every
	// binding of the AoR (RFC 3261 section 10.3 step 8), and one that
	// outgrows the path MTU is sent fragmented, as Kamailio and OpenSIPS
	// do; a larger answer cannot be sent and is logged. Only an
	// authenticated client gets a 200; a challenge is under 800 bytes.
	UDPMaxResponse int `toml:"udp_max_response"`
	// Domains overrides settings per SIP domain: [users_core.sip.domains."example.com"].
	Domains map[string]SIPDomainConfig `toml:"domains"`
	// ClientRules adjust challenges per User-Agent; [[users_core.sip.client_rules]].
	// When absent the shipped rules apply.
	ClientRules []ClientRuleConfig `toml:"client_rules"`
}

// maxUDPPayload is the largest UDP payload over IPv4 (65,535 minus the IP
// and UDP headers).
const maxUDPPayload = 65507

// SIPDomainConfig is [users_core.sip.domains.NAME].
type SIPDomainConfig struct {
	DigestAlgorithms []string `toml:"digest_algorithms"`
}

// ClientRuleConfig is one [[users_core.sip.client_rules]] entry.
type ClientRuleConfig struct {
	Name string `toml:"name"`
	// UserAgent is a regular expression matched against User-Agent.
	UserAgent        string   `toml:"user_agent"`
	DigestAlgorithms []string `toml:"digest_algorithms"`
	// Bearer, when set, turns the Bearer challenge on or off for them.
	Bearer *bool `toml:"bearer"`
}

// LockoutConfig is [users_core.lockout]: brute-force regulation.
type LockoutConfig struct {
	UserMaxFailures   int `toml:"user_max_failures"`
	UserWindowSeconds int `toml:"user_window_seconds"`
	UserLockSeconds   int `toml:"user_lock_seconds"`
	AddrMaxFailures   int `toml:"addr_max_failures"`
	AddrWindowSeconds int `toml:"addr_window_seconds"`
	AddrLockSeconds   int `toml:"addr_lock_seconds"`
}

// LogConfig is [users_core.log].
type LogConfig struct {
	Level  string `toml:"level"`  // trace, debug, info, warn, error
	Format string `toml:"format"` // auto (console on a terminal, else JSON), console, json
}

// JWTConfig is [users_core.jwt]: tokens and signing keys.
type JWTConfig struct {
	Issuer   string   `toml:"issuer"`
	Audience []string `toml:"audience"`
	// APIAudience must be in the audience of tokens the HTTP API accepts.
	APIAudience               string `toml:"api_audience"`
	AccessTTLSeconds          int    `toml:"access_ttl_seconds"`
	RefreshTTLSeconds         int    `toml:"refresh_ttl_seconds"` // idle lifetime
	RefreshAbsoluteTTLSeconds int    `toml:"refresh_absolute_ttl_seconds"`
	RefreshGraceSeconds       int    `toml:"refresh_grace_seconds"`
	LeewaySeconds             int    `toml:"leeway_seconds"`
	KeyRotationSeconds        int    `toml:"key_rotation_seconds"`
	KeyLeadTimeSeconds        int    `toml:"key_lead_time_seconds"`
}

// PasswordConfig is [users_core.password]: the policy and Argon2id
// parameters.
type PasswordConfig struct {
	MinLength         int    `toml:"min_length"`
	MaxLength         int    `toml:"max_length"`
	Argon2MemoryCost  uint32 `toml:"argon2_memory_cost"` // KiB
	Argon2TimeCost    uint32 `toml:"argon2_time_cost"`
	Argon2Parallelism uint8  `toml:"argon2_parallelism"`
	// MaxConcurrentHashes bounds concurrent Argon2id runs, so memory stays
	// at most this times argon2_memory_cost; 0 means the number of CPUs.
	MaxConcurrentHashes int `toml:"max_concurrent_hashes"`
}

// AuthConfig is the [auth] table.
type AuthConfig struct {
	TrustedIssuers map[string]TrustedIssuer `toml:"trusted_issuers"`
}

// TrustedIssuer is one [auth.trusted_issuers.NAME] table: an outside token
// issuer whose access tokens are accepted.
type TrustedIssuer struct {
	Issuer  string `toml:"issuer"`
	JWKSURI string `toml:"jwks_uri"` // empty: discovered from the issuer
	// Audience must be in the aud of its tokens.
	Audience string `toml:"audience"`
	// TokenTypes are the accepted JWT header typ values; default at+jwt.
	TokenTypes []string `toml:"token_types"`
}

// defaultConfig returns the zero-configuration defaults.
func defaultConfig() Config {
	return Config{UsersCore: UsersCoreConfig{
		APIBindAddress: "127.0.0.1:8081",
		DataDir:        "./data",
		Domains:        []string{"localhost"},
		Log:            LogConfig{Level: "info", Format: "auto"},
		JWT: JWTConfig{
			Issuer:                    "https://users.rvoip.local",
			Audience:                  []string{"rvoip-api", "rvoip-sip"},
			APIAudience:               "rvoip-api",
			AccessTTLSeconds:          900,
			RefreshTTLSeconds:         30 * 86400,
			RefreshAbsoluteTTLSeconds: 90 * 86400,
			RefreshGraceSeconds:       10,
			LeewaySeconds:             30,
			KeyRotationSeconds:        30 * 86400,
			KeyLeadTimeSeconds:        3600,
		},
		SIP: SIPConfig{
			UDP: "127.0.0.1:5060", TCP: "127.0.0.1:5060", TLS: "off", WS: "127.0.0.1:5066", WSS: "off",
			DigestAlgorithms:     []string{"SHA-256", "MD5"},
			Audience:             "rvoip-sip",
			UsernameClaims:       []string{"preferred_username", "username"},
			NonceLifetimeSeconds: 300,
			MinExpires:           60, MaxExpires: 86400, DefaultExpires: 3600, MaxContacts: 10, OverLimit: "reject",
			ReadTimeoutSeconds: 900, WriteTimeoutSeconds: 10, MaxConnsPerIP: 64, MaxInFlight: 4096, RegisterTimeoutSeconds: 2,
			RatePerSource: 2000, RateBurst: 4000,
			UDPMaxResponse: maxUDPPayload,
		},
		Lockout: LockoutConfig{
			UserMaxFailures: 5, UserWindowSeconds: 300, UserLockSeconds: 900,
			AddrMaxFailures: 20, AddrWindowSeconds: 300, AddrLockSeconds: 900,
		},
		Audit: AuditConfig{RetentionDays: 90},
		Cache: CacheConfig{CheckIntervalMS: 250, CredentialEntries: 100_000},
		Password: PasswordConfig{
			MinLength:         12,
			MaxLength:         128,
			Argon2MemoryCost:  65536,
			Argon2TimeCost:    3,
			Argon2Parallelism: 4,
		},
	}}
}

// loadConfigFile decodes the TOML file at path over cfg. Unknown keys are
// an error naming the key and its line.
func loadConfigFile(path string, cfg *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) && len(strict.Errors) > 0 {
			var parts []string
			for _, e := range strict.Errors {
				row, _ := e.Position()
				parts = append(parts, fmt.Sprintf("%s:%d: unknown key %q", path, row, strings.Join(e.Key(), ".")))
			}
			return fmt.Errorf("config: %s", strings.Join(parts, "; "))
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return fmt.Errorf("config: %s:%d:%d: %s", path, row, col, de.Error())
		}
		return fmt.Errorf("config: %s: %w", path, err)
	}
	return nil
}

// finish fills derived defaults and validates cfg.
func (c *Config) finish() error {
	u := &c.UsersCore
	if u.DataDir == "" {
		return errors.New("config: data_dir must not be empty")
	}
	if u.DatabaseURL == "" {
		u.DatabaseURL = "sqlite://" + filepath.Join(u.DataDir, "users.db")
	}
	if u.DataKeyFile == "" {
		u.DataKeyFile = filepath.Join(u.DataDir, "data.key")
	}
	if u.DataKey != "" {
		if k, err := hex.DecodeString(u.DataKey); err != nil || len(k) != 32 {
			return errors.New("config: data_key must be 64 hex digits (32 bytes)")
		}
	}
	var domains []string
	seen := map[string]bool{}
	for _, d := range u.Domains {
		for _, p := range strings.Split(d, ",") {
			p = strings.ToLower(strings.TrimSpace(p))
			if p == "" || seen[p] {
				continue
			}
			if strings.ContainsAny(p, "\" \t\r\n\\") {
				return fmt.Errorf("config: domain %q contains characters not allowed in a SIP domain", p)
			}
			seen[p] = true
			domains = append(domains, p)
		}
	}
	if len(domains) == 0 {
		return errors.New("config: at least one domain is required")
	}
	u.Domains = domains
	switch strings.ToLower(u.Log.Format) {
	case "auto", "console", "json":
	default:
		return fmt.Errorf("config: log format %q: want auto, console or json", u.Log.Format)
	}
	if u.JWT.Issuer == "" {
		return errors.New("config: jwt.issuer must not be empty")
	}
	j := u.JWT
	if j.AccessTTLSeconds < 60 || j.RefreshTTLSeconds < 60 || j.RefreshAbsoluteTTLSeconds < j.RefreshTTLSeconds {
		return errors.New("config: jwt: access_ttl_seconds and refresh_ttl_seconds must be at least 60, refresh_absolute_ttl_seconds at least refresh_ttl_seconds")
	}
	if j.LeewaySeconds < 0 || j.LeewaySeconds > 60 {
		return errors.New("config: jwt.leeway_seconds must be between 0 and 60")
	}
	if j.RefreshGraceSeconds < 0 || j.RefreshGraceSeconds > 300 {
		return errors.New("config: jwt.refresh_grace_seconds must be between 0 and 300")
	}
	if j.KeyLeadTimeSeconds < 0 || j.KeyRotationSeconds <= j.KeyLeadTimeSeconds {
		return errors.New("config: jwt.key_rotation_seconds must be longer than key_lead_time_seconds")
	}
	if !contains(j.Audience, j.APIAudience) {
		return fmt.Errorf("config: jwt.api_audience %q is not in jwt.audience %v", j.APIAudience, j.Audience)
	}
	l := u.Lockout
	if l.UserMaxFailures < 0 || l.AddrMaxFailures < 0 || l.UserWindowSeconds <= 0 || l.AddrWindowSeconds <= 0 || l.UserLockSeconds <= 0 || l.AddrLockSeconds <= 0 {
		return errors.New("config: lockout: windows and lock times must be positive, failure counts not negative (0 turns a rule off)")
	}
	if u.Audit.RetentionDays < 0 || u.Audit.RetentionDays > 36500 {
		return errors.New("config: audit.retention_days must be between 0 (keep forever) and 36500")
	}
	if ca := u.Cache; ca.CheckIntervalMS < 0 || ca.CheckIntervalMS > 60_000 || ca.CredentialEntries < 0 {
		return errors.New("config: cache.check_interval_ms must be between 0 (no caching) and 60000, cache.credential_entries not negative (0 turns it off)")
	}
	if _, err := parsePrefixes(u.HTTP.TrustedProxies); err != nil {
		return err
	}
	for _, o := range u.HTTP.CORSOrigins {
		if o != "*" && checkURL(o) != nil {
			return fmt.Errorf("config: http.cors_origins: %q is not an origin like https://app.example.com", o)
		}
	}
	if err := c.checkSIP(); err != nil {
		return err
	}
	for name, ti := range c.Auth.TrustedIssuers {
		if ti.Audience == "" {
			return fmt.Errorf("config: auth.trusted_issuers.%s.audience is required", name)
		}
		if err := checkURL(ti.Issuer); err != nil {
			return fmt.Errorf("config: auth.trusted_issuers.%s.issuer: %v", name, err)
		}
		if ti.JWKSURI != "" {
			if err := checkURL(ti.JWKSURI); err != nil {
				return fmt.Errorf("config: auth.trusted_issuers.%s.jwks_uri: %v", name, err)
			}
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// parsePrefixes parses addresses and CIDR prefixes.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("config: http.trusted_proxies: %q is not an address or CIDR prefix", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

// configKey is one leaf setting of the [users_core] tree: its TOML path,
// its environment variable and where it lives in Config.
type configKey struct {
	Path  string // e.g. users_core.password.min_length
	Env   string // e.g. USERS_CORE_PASSWORD_MIN_LENGTH
	value reflect.Value
}

// configKeys lists every leaf setting under [users_core] in cfg, in field
// order. Each one can be set from the environment as
// USERS_CORE_<PATH BELOW users_core>, upper-cased with dots as underscores.
func configKeys(cfg *Config) []configKey {
	var keys []configKey
	var walk func(v reflect.Value, path []string)
	walk = func(v reflect.Value, path []string) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			tag := t.Field(i).Tag.Get("toml")
			if tag == "" || tag == "-" {
				continue
			}
			p := append(append([]string(nil), path...), tag)
			f := v.Field(i)
			if f.Kind() == reflect.Struct {
				walk(f, p)
				continue
			}
			if f.Kind() == reflect.Map || (f.Kind() == reflect.Slice && f.Type().Elem().Kind() != reflect.String) {
				continue // tables: file only
			}
			keys = append(keys, configKey{
				Path:  "users_core." + strings.Join(p, "."),
				Env:   "USERS_CORE_" + strings.ToUpper(strings.Join(p, "_")),
				value: f,
			})
		}
	}
	walk(reflect.ValueOf(&cfg.UsersCore).Elem(), nil)
	return keys
}

// applyEnv sets every [users_core] key whose environment variable is set.
// Lists are comma-separated.
func applyEnv(cfg *Config, getenv func(string) string) error {
	for _, k := range configKeys(cfg) {
		s := getenv(k.Env)
		if s == "" {
			continue
		}
		if err := setValue(k.value, s); err != nil {
			return fmt.Errorf("config: %s=%q: %v", k.Env, s, err)
		}
	}
	return nil
}

func setValue(v reflect.Value, s string) error {
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || v.OverflowInt(n) {
			return errors.New("not an integer in range")
		}
		v.SetInt(n)
	case reflect.Uint8, reflect.Uint32:
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil || v.OverflowUint(n) {
			return errors.New("not a non-negative integer in range")
		}
		v.SetUint(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return errors.New("not a boolean")
		}
		v.SetBool(b)
	case reflect.Slice:
		var list []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
		v.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("unsupported kind %s", v.Kind())
	}
	return nil
}

// checkSIP validates [users_core.sip].
func (c *Config) checkSIP() error {
	sc := &c.UsersCore.SIP
	if _, err := sip.ParseAlgorithms(strings.Join(sc.DigestAlgorithms, ",")); err != nil {
		return fmt.Errorf("config: sip.digest_algorithms: %v", err)
	}
	var bearer []string
	for _, t := range sc.BearerChallenge {
		for _, p := range strings.Split(t, ",") {
			switch p = strings.ToUpper(strings.TrimSpace(p)); p {
			case "", "OFF", "NONE":
			case "UDP", "TCP", "TLS", "WS", "WSS":
				bearer = append(bearer, p)
			default:
				return fmt.Errorf("config: sip.bearer_challenge: unknown transport %q (UDP, TCP, TLS, WS, WSS or off)", p)
			}
		}
	}
	sc.BearerChallenge = bearer
	if sc.Audience == "" {
		return errors.New("config: sip.audience must not be empty")
	}
	if !contains(c.UsersCore.JWT.Audience, sc.Audience) {
		return fmt.Errorf("config: sip.audience %q is not in jwt.audience %v, so our tokens could not register", sc.Audience, c.UsersCore.JWT.Audience)
	}
	if sc.OverLimit != "reject" && sc.OverLimit != "drop-oldest" {
		return fmt.Errorf("config: sip.over_limit %q: want reject or drop-oldest", sc.OverLimit)
	}
	on := func(a string) bool { return a != "" && a != "off" }
	if (on(sc.TLS) || on(sc.WSS)) && (sc.TLSCert == "" || sc.TLSKey == "") {
		return errors.New("config: sip.tls and sip.wss need tls_cert and tls_key (--tls-cert, --tls-key)")
	}
	if sc.RatePerSource < 0 || sc.RateBurst < 0 {
		return errors.New("config: sip.rate_per_source and sip.rate_burst must not be negative")
	}
	if sc.NonceLifetimeSeconds < 10 || sc.ReadTimeoutSeconds < 0 || sc.WriteTimeoutSeconds < 0 || sc.UDPMaxResponse < 512 || sc.UDPMaxResponse > maxUDPPayload {
		return errors.New("config: sip: nonce_lifetime_seconds must be at least 10, timeouts not negative, udp_max_response between 512 and 65507")
	}
	if sc.RegisterTimeoutSeconds < 1 || sc.RegisterTimeoutSeconds > 30 {
		// Past 32 s (RFC 3261 Timer F) the client has given up on the answer.
		return errors.New("config: sip.register_timeout_seconds must be between 1 and 30")
	}
	for i, ua := range sc.DropUserAgents {
		// An empty entry would match every User-Agent.
		if strings.TrimSpace(ua) == "" {
			return fmt.Errorf("config: sip.drop_user_agents[%d] is empty, which would drop every client", i)
		}
	}
	for d, dc := range sc.Domains {
		if !contains(c.UsersCore.Domains, strings.ToLower(d)) {
			return fmt.Errorf("config: sip.domains.%q is not one of the domains %v", d, c.UsersCore.Domains)
		}
		if _, err := sip.ParseAlgorithms(strings.Join(dc.DigestAlgorithms, ",")); err != nil {
			return fmt.Errorf("config: sip.domains.%q.digest_algorithms: %v", d, err)
		}
	}
	for i, r := range sc.ClientRules {
		if _, err := regexp.Compile(r.UserAgent); err != nil || r.UserAgent == "" {
			return fmt.Errorf("config: sip.client_rules[%d] (%s): user_agent is not a valid regular expression", i, r.Name)
		}
		if len(r.DigestAlgorithms) > 0 {
			if _, err := sip.ParseAlgorithms(strings.Join(r.DigestAlgorithms, ",")); err != nil {
				return fmt.Errorf("config: sip.client_rules[%d] (%s): %v", i, r.Name, err)
			}
		}
	}
	return nil
}

// sipFilter turns the rate keys and the User-Agent drop list into the
// SIP filter's settings.
func sipFilter(sc SIPConfig) sip.FilterConfig {
	if sc.RatePerSource == 0 {
		return sip.FilterConfig{Rate: -1, DropUserAgents: sc.DropUserAgents}
	}
	return sip.FilterConfig{Rate: float64(sc.RatePerSource), Burst: sc.RateBurst, DropUserAgents: sc.DropUserAgents}
}
