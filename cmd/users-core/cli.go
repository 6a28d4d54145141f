package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/identity/httpapi"
)

const usageText = `users-core: a SIP REGISTER authenticator with its own user identity service

Usage:
  users-core serve  [--http ADDR] [--ready-file FILE] [--cors-origins LIST]
                    [--sip-udp ADDR] [--sip-tcp ADDR] [--sip-tls ADDR] [--sip-ws ADDR]
                    [--sip-wss ADDR] [--tls-cert FILE --tls-key FILE]
                    [--digest-algorithms LIST] [--bearer-challenge TRANSPORTS]
  users-core user add NAME [--password-stdin] [--role ROLE]... [--email E]
                    [--display-name N] [--token-only] [--disabled]
  users-core user list [--json] | show NAME [--json]
  users-core user passwd NAME [--password-stdin] [--token-only=true|false]
  users-core user disable NAME | enable NAME | delete NAME
  users-core user import FILE [--separator C] [--role ROLE]... [--token-only]
  users-core user import --from-kamailio SOURCE [--role ROLE]...
                    SOURCE: an SQLite file, sqlite://PATH, postgres://...,
                    or mysql://user:pass@host:port/db holding Kamailio's subscriber table
  users-core apikey create NAME --name LABEL --scope S... [--expires DURATION] [--json]
  users-core apikey list NAME [--json] | revoke ID
  users-core keys list [--json] | rotate [--now]
  users-core store copy --from URL --to URL [--force] [--batch N]
                    copy every user, credential, key, token, API key, binding and
                    audit event to another database (sqlite:// <-> postgres://),
                    in one transaction, refusing a non-empty target unless --force
                    (which deletes everything in it first). Sealed values (HA1,
                    private keys) are copied as they are: the target needs the
                    same data key (data.key or data_key)
  users-core version

Common flags (every command):
  --config FILE        TOML configuration file
  --data-dir DIR       data directory (default ./data)
  --database-url URL   database (default sqlite://<data-dir>/users.db)
  --domain NAME        SIP domain and Digest realm; repeat for several (default localhost)
  --log-level LEVEL    trace, debug, info, warn, error (default info)
  --log-format FORMAT  auto, console, json (default auto)

Every flag can also be set with USERS_CORE_<FLAG> (dashes as underscores);
flags win over the environment, the environment over the TOML file.
Exit status: 0 success, 1 failure, 2 bad usage.
`

// cli runs one users-core command with the given streams.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

func newCLI(stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) *cli {
	return &cli{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
}

// usageError is bad usage: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// run executes args and returns the exit status.
func (c *cli) run(ctx context.Context, args []string) int {
	err := c.dispatch(identity.WithActor(ctx, "cli", ""), args)
	if err == nil {
		return 0
	}
	if errors.Is(err, pflag.ErrHelp) {
		fmt.Fprint(c.stdout, usageText)
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(c.stderr, "users-core: %s\nRun 'users-core help' for usage.\n", ue.msg)
		return 2
	}
	fmt.Fprintf(c.stderr, "users-core: %s\n", errorText(err))
	return 1
}

// errorText is the one-line message for err: an identity error's
// client-safe message (with its detail for internal errors, since the CLI
// is run by the operator), or the error itself.
func errorText(err error) string {
	var e *identity.Error
	if errors.As(err, &e) {
		if e.Code == identity.CodeInternal && e.Err != nil {
			return "internal error: " + e.Err.Error()
		}
		return e.Message
	}
	return err.Error()
}

func (c *cli) dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("missing command")
	}
	switch args[0] {
	case "serve":
		return c.serve(ctx, args[1:])
	case "user":
		if len(args) < 2 {
			return usagef("user: missing subcommand (add, list, show, passwd, disable, enable, delete, import)")
		}
		return c.user(ctx, args[1], args[2:])
	case "apikey":
		if len(args) < 2 {
			return usagef("apikey: missing subcommand (create, list, revoke)")
		}
		return c.apikey(ctx, args[1], args[2:])
	case "keys":
		if len(args) < 2 {
			return usagef("keys: missing subcommand (list, rotate)")
		}
		return c.keys(ctx, args[1], args[2:])
	case "store":
		if len(args) < 2 {
			return usagef("store: missing subcommand (copy)")
		}
		return c.storeCmd(ctx, args[1], args[2:])
	case "version":
		if len(args) > 1 {
			return usagef("version takes no arguments")
		}
		fmt.Fprintln(c.stdout, "users-core", Version())
		return nil
	case "help", "-h", "--help":
		return pflag.ErrHelp
	}
	return usagef("unknown command %q", args[0])
}

// common holds the flags every command takes.
type common struct {
	fs        *pflag.FlagSet
	config    string
	dataDir   string
	dbURL     string
	domains   []string
	logLevel  string
	logFormat string
}

func newFlags(name string) *common {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	c := &common{fs: fs}
	fs.StringVar(&c.config, "config", "", "TOML configuration file")
	fs.StringVar(&c.dataDir, "data-dir", "", "data directory")
	fs.StringVar(&c.dbURL, "database-url", "", "database URL")
	fs.StringArrayVar(&c.domains, "domain", nil, "SIP domain (repeatable)")
	fs.StringVar(&c.logLevel, "log-level", "", "log level")
	fs.StringVar(&c.logFormat, "log-format", "", "log format")
	return c
}

// parse parses args, fills unset flags from the environment and returns
// the positional arguments.
func (c *cli) parse(f *common, args []string) ([]string, error) {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, err
		}
		return nil, usagef("%s: %v", f.fs.Name(), err)
	}
	var envErr error
	f.fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed || envErr != nil {
			return
		}
		name := "USERS_CORE_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		v := c.getenv(name)
		if v == "" {
			return
		}
		values := []string{v}
		if fl.Value.Type() == "stringArray" {
			values = strings.Split(v, ",")
		}
		for _, x := range values {
			if err := f.fs.Set(fl.Name, strings.TrimSpace(x)); err != nil {
				envErr = usagef("%s: %v", name, err)
			}
		}
	})
	return f.fs.Args(), envErr
}

// configuration builds the configuration: defaults, then the TOML file,
// then the environment variables of TOML keys, then flags (which include
// the flags' own environment variables).
func (f *common) configuration(getenv func(string) string) (Config, error) {
	cfg := defaultConfig()
	if f.config != "" {
		if err := loadConfigFile(f.config, &cfg); err != nil {
			return cfg, err
		}
	}
	if err := applyEnv(&cfg, getenv); err != nil {
		return cfg, err
	}
	u := &cfg.UsersCore
	set := func(name string, dst *string, v string) {
		if f.fs.Changed(name) {
			*dst = v
		}
	}
	set("data-dir", &u.DataDir, f.dataDir)
	set("database-url", &u.DatabaseURL, f.dbURL)
	set("log-level", &u.Log.Level, f.logLevel)
	set("log-format", &u.Log.Format, f.logFormat)
	if f.fs.Changed("domain") {
		u.Domains = f.domains
	}
	return cfg, cfg.finish()
}

// open builds the configuration and logger and opens the App.
func (c *cli) open(ctx context.Context, f *common) (*App, error) {
	cfg, err := f.configuration(c.getenv)
	if err != nil {
		return nil, err
	}
	if cfg.UsersCore.Log.Level == "info" {
		// Commands other than serve speak on stdout; their log shows only
		// warnings unless asked for more.
		cfg.UsersCore.Log.Level = "warn"
	}
	logger, err := newLogger(cfg.UsersCore.Log, c.stderr)
	if err != nil {
		return nil, usagef("%v", err)
	}
	bridgeSlog(logger)
	return OpenApp(ctx, cfg, logger)
}

func (c *cli) serve(ctx context.Context, args []string) error {
	f := newFlags("serve")
	httpAddr := f.fs.String("http", "", "HTTP listen address, or off")
	cors := f.fs.StringSlice("cors-origins", nil, "browser origins allowed to call login, refresh and JWKS (comma-separated)")
	sipUDP := f.fs.String("sip-udp", "", "SIP UDP listen address, or off")
	sipTCP := f.fs.String("sip-tcp", "", "SIP TCP listen address, or off")
	sipTLS := f.fs.String("sip-tls", "", "SIP TLS listen address, or off")
	sipWS := f.fs.String("sip-ws", "", "SIP WebSocket listen address, or off")
	sipWSS := f.fs.String("sip-wss", "", "SIP secure WebSocket listen address, or off")
	tlsCert := f.fs.String("tls-cert", "", "TLS certificate (PEM) for SIP TLS and WSS")
	tlsKey := f.fs.String("tls-key", "", "TLS private key (PEM) for SIP TLS and WSS")
	digestAlgs := f.fs.String("digest-algorithms", "", "Digest algorithms in order of preference, e.g. SHA-256,MD5")
	bearerChallenge := f.fs.String("bearer-challenge", "", "transports whose 401 also carries a Bearer challenge, e.g. WS,WSS (default off)")
	readyFile := f.fs.String("ready-file", "", "write the bound addresses here once listening")
	rest, err := c.parse(f, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("serve takes no arguments, got %q", rest[0])
	}
	cfg, err := f.configuration(c.getenv)
	if err != nil {
		return err
	}
	if f.fs.Changed("http") {
		cfg.UsersCore.APIBindAddress = *httpAddr
	}
	sc := &cfg.UsersCore.SIP
	for _, o := range []struct {
		flag string
		dst  *string
		v    string
	}{{"sip-udp", &sc.UDP, *sipUDP}, {"sip-tcp", &sc.TCP, *sipTCP}, {"sip-tls", &sc.TLS, *sipTLS},
		{"sip-ws", &sc.WS, *sipWS}, {"sip-wss", &sc.WSS, *sipWSS}, {"tls-cert", &sc.TLSCert, *tlsCert}, {"tls-key", &sc.TLSKey, *tlsKey}} {
		if f.fs.Changed(o.flag) {
			*o.dst = o.v
		}
	}
	if f.fs.Changed("digest-algorithms") {
		sc.DigestAlgorithms = strings.Split(*digestAlgs, ",")
	}
	if f.fs.Changed("bearer-challenge") {
		sc.BearerChallenge = []string{*bearerChallenge}
	}
	if f.fs.Changed("cors-origins") {
		cfg.UsersCore.HTTP.CORSOrigins = *cors
	}
	if err := cfg.finish(); err != nil {
		return err
	}
	logs := newLogBuffer(c.stderr)
	defer logs.Close()
	logger, err := newLogger(cfg.UsersCore.Log, logs)
	if err != nil {
		return usagef("%v", err)
	}
	bridgeSlog(logger)
	m := &Main{Config: cfg, ReadyFile: *readyFile, Logger: logger, Notice: c.stdout}
	if err := m.Run(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		logger.Info().Msg("shutting down")
	case err = <-m.Err():
		logger.Error().Err(err).Msg("listener failed")
	}
	if cerr := m.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

func (c *cli) user(ctx context.Context, sub string, args []string) error {
	f := newFlags("user " + sub)
	var (
		passwordStdin = false
		roles         []string
		email, dname  string
		tokenOnly     bool
		disabled      bool
		asJSON        bool
		separator     string
		fromKamailio  bool
	)
	switch sub {
	case "add":
		f.fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
		f.fs.StringArrayVar(&roles, "role", nil, "role: admin or user (repeatable)")
		f.fs.StringVar(&email, "email", "", "email address")
		f.fs.StringVar(&dname, "display-name", "", "display name")
		f.fs.BoolVar(&tokenOnly, "token-only", false, "no Digest credentials: SIP with Bearer tokens only")
		f.fs.BoolVar(&disabled, "disabled", false, "create the user disabled")
	case "passwd":
		f.fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
		f.fs.BoolVar(&tokenOnly, "token-only", false, "set whether the user gets Digest credentials")
	case "list", "show":
		f.fs.BoolVar(&asJSON, "json", false, "print JSON")
	case "import":
		f.fs.StringVar(&separator, "separator", ",", "field separator of the CSV file")
		f.fs.StringArrayVar(&roles, "role", nil, "role for every imported user (repeatable)")
		f.fs.BoolVar(&tokenOnly, "token-only", false, "no Digest credentials for the imported users")
		f.fs.BoolVar(&fromKamailio, "from-kamailio", false, "the argument is a Kamailio database whose subscriber table is imported")
	case "disable", "enable", "delete":
	default:
		return usagef("user: unknown subcommand %q", sub)
	}
	rest, err := c.parse(f, args)
	if err != nil {
		return err
	}
	wantArgs := 1
	if sub == "list" {
		wantArgs = 0
	}
	if len(rest) != wantArgs {
		if wantArgs == 0 {
			return usagef("user list takes no arguments")
		}
		return usagef("user %s needs exactly one argument", sub)
	}
	var password string
	if sub == "add" || sub == "passwd" {
		// Read the password before opening anything, so a bad invocation
		// changes nothing.
		if password, err = c.readPassword(passwordStdin); err != nil {
			return err
		}
	}
	if fromKamailio {
		return c.importKamailio(ctx, f, rest[0], roles) // kamailio.go
	}
	app, err := c.open(ctx, f)
	if err != nil {
		return err
	}
	defer app.Close()
	svc := app.Users
	switch sub {
	case "add":
		rs := make([]identity.Role, len(roles))
		for i, r := range roles {
			rs[i] = identity.Role(r)
		}
		u, err := svc.CreateUser(ctx, identity.NewUser{
			Username: rest[0], Password: password, Email: email, DisplayName: dname,
			Roles: rs, TokenOnly: tokenOnly, Disabled: disabled,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "created user %s (id %s)\n", u.Username, u.ID)
		return nil
	case "list":
		return c.listUsers(ctx, svc, asJSON)
	case "import":
		return c.importUsers(ctx, svc, rest[0], separator, roles, tokenOnly)
	}
	u, err := svc.User(ctx, rest[0])
	if err != nil {
		return err
	}
	switch sub {
	case "show":
		return c.showUser(u, asJSON)
	case "passwd":
		var only *bool
		if f.fs.Changed("token-only") {
			only = &tokenOnly
		}
		if err := svc.SetPassword(ctx, u.ID, password, only); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "password of %s changed\n", u.Username)
	case "disable", "enable":
		if _, err := svc.SetActive(ctx, u.ID, sub == "enable"); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "user %s %sd\n", u.Username, sub)
	case "delete":
		if err := svc.DeleteUser(ctx, u.ID); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "user %s deleted\n", u.Username)
	}
	return nil
}

// readPassword reads the password from the first line of stdin, or prompts
// twice without echo on a terminal.
func (c *cli) readPassword(fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(c.stdin).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", usagef("--password-stdin: no password on stdin")
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	f, ok := c.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", usagef("stdin is not a terminal: pass the password with --password-stdin")
	}
	fmt.Fprint(c.stderr, "Password: ")
	p1, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(c.stderr)
	if err != nil {
		return "", err
	}
	fmt.Fprint(c.stderr, "Repeat password: ")
	p2, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(c.stderr)
	if err != nil {
		return "", err
	}
	if string(p1) != string(p2) {
		return "", errors.New("the passwords do not match")
	}
	return string(p1), nil
}

func (c *cli) listUsers(ctx context.Context, svc *identity.Service, asJSON bool) error {
	var all []httpapi.UserJSON
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	if !asJSON {
		fmt.Fprintln(tw, "USERNAME\tROLES\tACTIVE\tSIP\tEMAIL\tID")
	}
	f := identity.UserFilter{Limit: 1000}
	for {
		page, err := svc.ListUsers(ctx, f)
		if err != nil {
			return err
		}
		for _, u := range page.Users {
			if asJSON {
				all = append(all, httpapi.UserView(u))
				continue
			}
			sip := "digest+bearer"
			if u.TokenOnly {
				sip = "bearer"
			}
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\n", u.Username, joinRoles(u.Roles), u.Active, sip, u.Email, u.ID)
		}
		if page.Next == "" {
			break
		}
		f.After = page.Next
	}
	if asJSON {
		if all == nil {
			all = []httpapi.UserJSON{}
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(all)
	}
	return tw.Flush()
}

func (c *cli) showUser(u *identity.User, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(httpapi.UserView(u))
	}
	last := "never"
	if !u.LastLoginAt.IsZero() {
		last = u.LastLoginAt.Format(time.RFC3339)
	}
	fmt.Fprintf(c.stdout, "id:           %s\nusername:     %s\nemail:        %s\ndisplay name: %s\nroles:        %s\nactive:       %v\ntoken only:   %v\ncreated:      %s\nupdated:      %s\nlast login:   %s\n",
		u.ID, u.Username, u.Email, u.DisplayName, joinRoles(u.Roles), u.Active, u.TokenOnly,
		u.CreatedAt.Format(time.RFC3339), u.UpdatedAt.Format(time.RFC3339), last)
	return nil
}

func joinRoles(rs []identity.Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

// importUsers reads CSV rows username,password[,email[,display_name]] from
// path and creates them all, or none when any row is bad.
func (c *cli) importUsers(ctx context.Context, svc *identity.Service, path, sep string, roles []string, tokenOnly bool) error {
	if len([]rune(sep)) != 1 {
		return usagef("--separator must be one character")
	}
	file, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer file.Close()
	r := csv.NewReader(bufio.NewReader(file))
	r.Comma = []rune(sep)[0]
	r.FieldsPerRecord = -1
	r.Comment = '#'
	rs := make([]identity.Role, len(roles))
	for i, x := range roles {
		rs[i] = identity.Role(x)
	}
	var list []identity.NewUser
	for line := 1; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("import: %s: %w", path, err)
		}
		for len(rec) > 0 && rec[len(rec)-1] == "" && len(rec) > 2 {
			rec = rec[:len(rec)-1] // trailing separators
		}
		if len(list) == 0 && len(rec) >= 2 && strings.EqualFold(rec[0], "username") && strings.EqualFold(rec[1], "password") {
			continue // header row
		}
		if len(rec) < 2 || len(rec) > 4 {
			return fmt.Errorf("import: %s: row %d: want username,password[,email[,display_name]], got %d fields", path, line, len(rec))
		}
		nu := identity.NewUser{Username: rec[0], Password: rec[1], Roles: rs, TokenOnly: tokenOnly}
		if len(rec) > 2 {
			nu.Email = rec[2]
		}
		if len(rec) > 3 {
			nu.DisplayName = rec[3]
		}
		list = append(list, nu)
	}
	if len(list) == 0 {
		return fmt.Errorf("import: %s holds no users", path)
	}
	progress := func(int) {}
	if f, ok := c.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		step := max(1, len(list)/200)
		progress = func(done int) {
			if done%step == 0 || done == len(list) {
				fmt.Fprintf(c.stderr, "\rhashing %d/%d", done, len(list))
			}
		}
		defer fmt.Fprintln(c.stderr)
	}
	start := time.Now()
	users, err := svc.ImportUsers(ctx, list, progress)
	if err != nil {
		return fmt.Errorf("import: %s: nothing imported: %s", path, errorText(err))
	}
	fmt.Fprintf(c.stdout, "imported %d users in %s\n", len(users), time.Since(start).Round(time.Millisecond))
	return nil
}

// keys lists the signing keys or schedules a rotation.
func (c *cli) keys(ctx context.Context, sub string, args []string) error {
	f := newFlags("keys " + sub)
	var asJSON, now bool
	switch sub {
	case "list":
		f.fs.BoolVar(&asJSON, "json", false, "print JSON")
	case "rotate":
		f.fs.BoolVar(&now, "now", false, "activate the new key at once (emergency; skips the lead time)")
	default:
		return usagef("keys: unknown subcommand %q", sub)
	}
	rest, err := c.parse(f, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("keys %s takes no arguments", sub)
	}
	app, err := c.open(ctx, f)
	if err != nil {
		return err
	}
	defer app.Close()
	kr, err := app.OpenKeyring(ctx)
	if err != nil {
		return err
	}
	if sub == "rotate" {
		k, err := kr.Rotate(ctx, now)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "new signing key %s published; it signs from %s\n", k.KID, k.ActivateAt.Format(time.RFC3339))
		return nil
	}
	infos := kr.Keys()
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(infos)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tSTATE\tCREATED\tACTIVE FROM\tRETIRED\tREMOVED AT")
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, k := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.KID, k.State, ts(k.CreatedAt), ts(k.ActivateAt), ts(k.RetiredAt), ts(k.RemoveAt))
	}
	return tw.Flush()
}
