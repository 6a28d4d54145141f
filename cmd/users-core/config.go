package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
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

	Log      LogConfig      `toml:"log"`
	JWT      JWTConfig      `toml:"jwt"`
	Password PasswordConfig `toml:"password"`
}

// LogConfig is [users_core.log].
type LogConfig struct {
	Level  string `toml:"level"`  // trace, debug, info, warn, error
	Format string `toml:"format"` // auto (console on a terminal, else JSON), console, json
}

// JWTConfig is [users_core.jwt].
type JWTConfig struct {
	Issuer   string   `toml:"issuer"`
	Audience []string `toml:"audience"`
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
	Issuer   string   `toml:"issuer"`
	JWKSURI  string   `toml:"jwks_uri"` // empty: discovered from the issuer
	Audience []string `toml:"audience"`
}

// defaultConfig returns the zero-configuration defaults.
func defaultConfig() Config {
	return Config{UsersCore: UsersCoreConfig{
		APIBindAddress: "127.0.0.1:8081",
		DataDir:        "./data",
		Domains:        []string{"localhost"},
		Log:            LogConfig{Level: "info", Format: "auto"},
		JWT: JWTConfig{
			Issuer:   "https://users.rvoip.local",
			Audience: []string{"rvoip-api", "rvoip-sip"},
		},
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
	for name, ti := range c.Auth.TrustedIssuers {
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
