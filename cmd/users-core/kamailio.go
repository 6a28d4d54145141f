package main

// Importing the subscribers of a Kamailio auth_db (`user import
// --from-kamailio SOURCE`): SQLite, PostgreSQL and MySQL/MariaDB sources,
// Kamailio's default schema being MySQL.

import (
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"golang.org/x/term"

	"github.com/rvoip/users-core/identity"
)

// kamailioConnectTimeout bounds connecting to a Kamailio database server.
const kamailioConnectTimeout = 15 * time.Second

// kamailioSource is a parsed --from-kamailio argument.
type kamailioSource struct {
	kind    string // "sqlite", "postgres" or "mysql"
	display string // for messages: the URL with its password masked
	secret  string // the URL's password, scrubbed from driver errors
	path    string // sqlite: the file
	pg      *pgx.ConnConfig
	my      *mysql.Config
}

// parseKamailioSource parses an SQLite file path, sqlite://PATH,
// postgres://..., postgresql://... or mysql://user:pass@host:port/db.
// Nothing is opened. Errors are usage errors and never contain the
// password.
func parseKamailioSource(s string) (*kamailioSource, error) {
	scheme, rest, hasScheme := strings.Cut(s, "://")
	if !hasScheme {
		if s == "" {
			return nil, usagef("--from-kamailio: empty source")
		}
		return &kamailioSource{kind: "sqlite", display: s, path: s}, nil
	}
	switch strings.ToLower(scheme) {
	case "sqlite":
		path, _, _ := strings.Cut(rest, "?")
		if path == "" {
			return nil, usagef("--from-kamailio: sqlite:// needs a file path")
		}
		return &kamailioSource{kind: "sqlite", display: path, path: path}, nil
	case "postgres", "postgresql", "mysql":
	default:
		return nil, usagef("--from-kamailio: unsupported scheme %q (want an SQLite file, sqlite://PATH, postgres://..., or mysql://user:pass@host:port/db)", scheme)
	}
	u, err := url.Parse(s)
	if err != nil {
		// url's errors quote the whole URL, password included.
		return nil, usagef("--from-kamailio: %s:// URL does not parse", scheme)
	}
	src := &kamailioSource{display: u.Redacted()}
	if u.User != nil {
		src.secret, _ = u.User.Password()
	}
	if strings.EqualFold(scheme, "mysql") {
		src.kind = "mysql"
		if src.my, err = mysqlConfig(u); err != nil {
			return nil, usagef("--from-kamailio: %s: %s", src.display, src.scrub(err.Error()))
		}
		return src, nil
	}
	src.kind = "postgres"
	if src.pg, err = pgx.ParseConfig(s); err != nil {
		return nil, usagef("--from-kamailio: %s: %s", src.display, src.scrub(err.Error()))
	}
	return src, nil
}

// mysqlConfig converts mysql://user:pass@host[:port]/db[?params] into the
// driver's configuration, whose DSN is user:pass@tcp(host:port)/db[?params].
// The port defaults to 3306; params are the driver's DSN parameters.
func mysqlConfig(u *url.URL) (*mysql.Config, error) {
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return nil, errors.New("want mysql://user:pass@host:port/database (the database name is missing)")
	}
	cfg := mysql.NewConfig()
	if u.RawQuery != "" {
		if _, err := url.ParseQuery(u.RawQuery); err != nil {
			return nil, err
		}
		var err error
		if cfg, err = mysql.ParseDSN("/?" + u.RawQuery); err != nil {
			return nil, err
		}
	}
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.Net = "tcp"
	host := u.Hostname()
	if host == "" {
		host = "127.0.0.1"
	}
	port := u.Port()
	if port == "" {
		port = "3306"
	}
	cfg.Addr = net.JoinHostPort(host, port)
	cfg.DBName = db
	return cfg, nil
}

// scrub removes the source's password from a message.
func (src *kamailioSource) scrub(msg string) string {
	if src.secret == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, src.secret, "xxxxx")
	return strings.ReplaceAll(msg, url.QueryEscape(src.secret), "xxxxx")
}

// open opens the source database; SQLite files read-only.
func (src *kamailioSource) open(ctx context.Context) (*sql.DB, error) {
	var db *sql.DB
	switch src.kind {
	case "sqlite":
		fi, err := os.Stat(src.path)
		if err != nil {
			return nil, unwrapPathErr(err)
		}
		if !fi.Mode().IsRegular() {
			return nil, errors.New("not a regular file")
		}
		q := url.Values{}
		q.Set("mode", "ro")
		q.Add("_pragma", "busy_timeout(5000)") // Kamailio may be writing
		if db, err = sql.Open("sqlite", "file:"+escapeSQLiteURIPath(src.path)+"?"+q.Encode()); err != nil {
			return nil, err
		}
	case "postgres":
		db = stdlib.OpenDB(*src.pg)
	case "mysql":
		conn, err := mysql.NewConnector(src.my)
		if err != nil {
			return nil, errors.New(src.scrub(err.Error()))
		}
		db = sql.OpenDB(conn)
	}
	db.SetMaxOpenConns(1)
	pctx, cancel := context.WithTimeout(ctx, kamailioConnectTimeout)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, errors.New(src.scrub(err.Error()))
	}
	return db, nil
}

// escapeSQLiteURIPath escapes the characters that would end or alter the
// path part of an SQLite file: URI.
func escapeSQLiteURIPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

// kamailioRow is one row of Kamailio's subscriber table. Missing columns
// and NULLs read as "".
type kamailioRow struct {
	ID                                    string // the id column, or the row's position when there is none
	Username, Domain, Password, HA1, HA1B string
}

// name identifies the row in messages.
func (r kamailioRow) name() string {
	return fmt.Sprintf("row %s (%s@%s)", r.ID, strconv.Quote(r.Username), r.Domain)
}

// kamailioColumns are the subscriber columns read, in this order.
var kamailioColumns = []string{"id", "username", "domain", "password", "ha1", "ha1b"}

// readKamailio reads the subscriber table, tolerating missing columns
// (older schemas lack ha1b; some have no plaintext password column). The
// read runs in a read-only transaction on the database servers.
func readKamailio(ctx context.Context, db *sql.DB, kind string) ([]kamailioRow, error) {
	var q interface {
		QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	} = db
	if kind != "sqlite" { // SQLite is opened with mode=ro
		tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return nil, err
		}
		defer tx.Rollback()
		q = tx
	}
	rows, err := q.QueryContext(ctx, "SELECT * FROM subscriber WHERE 1=0")
	if err != nil {
		return nil, fmt.Errorf("no readable subscriber table: %w", err)
	}
	cols, err := rows.Columns()
	rows.Close()
	if err != nil {
		return nil, err
	}
	have := map[string]string{} // lower-case name -> name as the database spells it
	for _, c := range cols {
		have[strings.ToLower(c)] = c
	}
	if have["username"] == "" {
		return nil, errors.New("the subscriber table has no username column")
	}
	if have["password"] == "" && have["ha1"] == "" {
		return nil, errors.New("the subscriber table has neither a password nor an ha1 column")
	}
	var sel []string
	var idx []int // position in kamailioColumns of each selected column
	for i, c := range kamailioColumns {
		if name := have[c]; name != "" {
			sel = append(sel, name)
			idx = append(idx, i)
		}
	}
	query := "SELECT " + strings.Join(sel, ", ") + " FROM subscriber"
	if have["id"] != "" {
		query += " ORDER BY " + have["id"]
	}
	rows, err = q.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kamailioRow
	vals := make([]sql.NullString, len(sel))
	ptrs := make([]any, len(sel))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		var f [6]string
		f[0] = strconv.Itoa(len(out) + 1)
		for i, v := range vals {
			if v.Valid {
				f[idx[i]] = v.String
			}
		}
		out = append(out, kamailioRow{ID: f[0], Username: f[1], Domain: strings.TrimSpace(f[2]),
			Password: f[3], HA1: strings.ToLower(strings.TrimSpace(f[4])), HA1B: strings.ToLower(strings.TrimSpace(f[5]))})
	}
	return out, rows.Err()
}

// kamailioPlan is what an import will create.
type kamailioPlan struct {
	users                 []identity.NewUser
	withPassword, ha1Only int
	warnings              []string // one line each, never a secret
}

// kamailioSettings is the part of the configuration the plan depends on.
type kamailioSettings struct {
	domains    []string // lower-case, as configured
	policy     identity.PasswordPolicy
	md5Offered func(domain string) bool
	roles      []identity.Role
}

// planKamailio turns subscriber rows into users. Rows with a password give
// a user with that password (policy skipped, with a warning when it is
// weak); rows with only ha1/ha1b give MD5 HA1s for the row's domain as
// realm. Users-core has one user per username: the rows of one username in
// several domains become one user, and an error when their credentials
// disagree.
func planKamailio(rows []kamailioRow, set kamailioSettings) (*kamailioPlan, error) {
	if len(rows) == 0 {
		return nil, errors.New("the subscriber table holds no rows")
	}
	configured := map[string]bool{}
	for _, d := range set.domains {
		configured[strings.ToLower(d)] = true
	}
	var order []string
	groups := map[string][]kamailioRow{}
	for _, r := range rows {
		if err := identity.ValidateUsername(r.Username); err != nil {
			return nil, fmt.Errorf("%s: %s", r.name(), errorText(err))
		}
		switch {
		case r.Password != "":
			if err := set.policy.CheckStorable(r.Password); err != nil {
				return nil, fmt.Errorf("%s: %s", r.name(), errorText(err))
			}
		case r.HA1 != "":
			if !isMD5Hex(r.HA1) {
				return nil, fmt.Errorf("%s: ha1 is not an MD5 HA1 (32 hex digits, got %d characters); only MD5 HA1 values can be imported, set a password instead", r.name(), len(r.HA1))
			}
			if r.HA1B != "" && !isMD5Hex(r.HA1B) {
				return nil, fmt.Errorf("%s: ha1b is not an MD5 HA1 (32 hex digits, got %d characters)", r.name(), len(r.HA1B))
			}
			if r.Domain == "" {
				return nil, fmt.Errorf("%s: an HA1-only row needs a domain: it is the realm the HA1 was computed for", r.name())
			}
			if strings.ContainsAny(r.Domain, "\" \t\r\n\\") {
				return nil, fmt.Errorf("%s: domain %q is not usable as a realm", r.name(), r.Domain)
			}
		default:
			return nil, fmt.Errorf("%s: no password and no ha1", r.name())
		}
		key := strings.ToLower(r.Username)
		if g := groups[key]; len(g) > 0 && g[0].Username != r.Username {
			return nil, fmt.Errorf("%s: username %q differs from %s only in case; users-core usernames ignore case, rename one of them", r.name(), r.Username, g[0].name())
		} else if len(g) == 0 {
			order = append(order, key)
		}
		groups[key] = append(groups[key], r)
	}

	plan := &kamailioPlan{}
	unserved := map[string]int{}   // domain -> users
	md5Missing := map[string]int{} // domain -> HA1-only users
	mixedCase := map[string]bool{}
	for _, key := range order {
		g := groups[key]
		name := g[0].Username
		var pwRow *kamailioRow
		for i := range g {
			r := &g[i]
			if r.Password == "" {
				continue
			}
			if pwRow != nil && pwRow.Password != r.Password {
				return nil, fmt.Errorf("user %q: different passwords in domains %q and %q; users-core has one user per username, make them equal or rename one", name, pwRow.Domain, r.Domain)
			}
			if pwRow == nil {
				pwRow = r
			}
		}
		seenDomain := map[string]bool{}
		for _, r := range g {
			d := strings.ToLower(r.Domain)
			if d != "" && !configured[d] && !seenDomain[d] {
				unserved[d]++
			}
			seenDomain[d] = true
		}
		nu := identity.NewUser{Username: name, Roles: set.roles}
		if pwRow != nil {
			nu.Password, nu.SkipPasswordPolicy = pwRow.Password, true
			for _, r := range g {
				if r.HA1 == "" || r.Domain == "" {
					continue
				}
				if md5hexOf(name+":"+r.Domain+":"+pwRow.Password) == r.HA1 {
					continue
				}
				if r.Password == "" {
					return nil, fmt.Errorf("user %q: the ha1 of domain %q does not match the password of domain %q; users-core has one user per username, set a password for the first or remove one row", name, r.Domain, pwRow.Domain)
				}
				plan.warnings = append(plan.warnings, fmt.Sprintf("%s: the ha1 column does not match the password column; importing the password (phones configured for the password Kamailio checked through ha1 will fail)", r.name()))
			}
			if err := set.policy.Check(name, pwRow.Password); err != nil {
				plan.warnings = append(plan.warnings, fmt.Sprintf("user %s: password does not meet the policy (%s); ask them to change it", name, errorText(err)))
			}
			plan.withPassword++
		} else {
			realms := map[string]kamailioRow{}
			for _, r := range g {
				realm := strings.ToLower(r.Domain)
				if prev, dup := realms[realm]; dup {
					if prev.HA1 != r.HA1 || prev.HA1B != r.HA1B {
						return nil, fmt.Errorf("%s: domain %q repeats %s with other HA1 values", r.name(), r.Domain, prev.name())
					}
					continue
				}
				realms[realm] = r
				if realm != r.Domain {
					mixedCase[r.Domain] = true
				}
				if set.md5Offered != nil && configured[realm] && !set.md5Offered(realm) {
					md5Missing[realm]++
				}
				nu.KnownHA1s = append(nu.KnownHA1s, identity.KnownHA1{Realm: realm, Algorithm: identity.MD5, HA1: r.HA1})
				if r.HA1B != "" {
					nu.KnownHA1s = append(nu.KnownHA1s, identity.KnownHA1{Realm: realm, Algorithm: identity.MD5, Qualified: true, HA1: r.HA1B})
				}
			}
			plan.ha1Only++
		}
		plan.users = append(plan.users, nu)
	}
	for _, d := range sortedKeys(unserved) {
		plan.warnings = append(plan.warnings, fmt.Sprintf("domain %s (%d users) is not one of the configured domains %v: its phones will get 404 until it is added (--domain or users_core.domains)", d, unserved[d], set.domains))
	}
	for _, d := range sortedKeys(md5Missing) {
		plan.warnings = append(plan.warnings, fmt.Sprintf("domain %s: MD5 is not among its Digest algorithms, so its %d HA1-only users cannot register until MD5 is enabled or they get a password", d, md5Missing[d]))
	}
	for _, d := range sortedKeys(mixedCase) {
		plan.warnings = append(plan.warnings, fmt.Sprintf("domain %q is not lower-case: users-core challenges with realm %q, so HA1-only users of that domain will fail Digest if Kamailio computed their HA1 over %q", d, strings.ToLower(d), d))
	}
	return plan, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func isMD5Hex(s string) bool {
	return len(s) == 32 && strings.Trim(s, "0123456789abcdef") == ""
}

func md5hexOf(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// md5OfferedFunc reports, from the configuration, whether a domain's
// Digest challenge includes MD5 (client rules only narrow it).
func md5OfferedFunc(cfg Config) func(string) bool {
	sc := cfg.UsersCore.SIP
	return func(domain string) bool {
		algs := sc.DigestAlgorithms
		for d, dc := range sc.Domains {
			if strings.EqualFold(d, domain) && len(dc.DigestAlgorithms) > 0 {
				algs = dc.DigestAlgorithms
			}
		}
		for _, a := range algs {
			for _, x := range strings.Split(a, ",") {
				if strings.EqualFold(strings.TrimSpace(x), string(identity.MD5)) {
					return true
				}
			}
		}
		return false
	}
}

var entryRE = regexp.MustCompile(`^entry (\d+): `)

// importKamailio runs `user import --from-kamailio SOURCE`: it reads the
// whole subscriber table first, then creates every user or none.
func (c *cli) importKamailio(ctx context.Context, f *common, source string, roles []string) error {
	for _, fl := range []string{"separator", "token-only"} {
		if f.fs.Changed(fl) {
			return usagef("--%s does not apply to --from-kamailio", fl)
		}
	}
	src, err := parseKamailioSource(source)
	if err != nil {
		return err
	}
	cfg, err := f.configuration(c.getenv)
	if err != nil {
		return err
	}
	fail := func(err error) error { return fmt.Errorf("import: %s: nothing imported: %s", src.display, err) }
	db, err := src.open(ctx)
	if err != nil {
		return fail(err)
	}
	rows, err := readKamailio(ctx, db, src.kind)
	db.Close()
	if err != nil {
		return fail(errors.New(src.scrub(err.Error())))
	}
	rs := make([]identity.Role, len(roles))
	for i, r := range roles {
		rs[i] = identity.Role(r)
	}
	u := cfg.UsersCore
	plan, err := planKamailio(rows, kamailioSettings{
		domains:    u.Domains,
		policy:     identity.PasswordPolicy{MinLength: u.Password.MinLength, MaxLength: u.Password.MaxLength},
		md5Offered: md5OfferedFunc(cfg),
		roles:      rs,
	})
	if err != nil {
		return fail(err)
	}
	for _, w := range plan.warnings {
		fmt.Fprintln(c.stderr, "users-core: warning:", w)
	}
	app, err := c.open(ctx, f)
	if err != nil {
		return err
	}
	defer app.Close()
	progress := func(int) {}
	if tf, ok := c.stderr.(*os.File); ok && term.IsTerminal(int(tf.Fd())) {
		n := len(plan.users)
		step := max(1, n/200)
		progress = func(done int) {
			if done%step == 0 || done == n {
				fmt.Fprintf(c.stderr, "\rimporting %d/%d", done, n)
			}
		}
		defer fmt.Fprintln(c.stderr)
	}
	users, err := app.Users.ImportUsers(ctx, plan.users, progress)
	if err != nil {
		msg := errorText(err)
		if m := entryRE.FindStringSubmatch(msg); m != nil {
			if i, _ := strconv.Atoi(m[1]); i >= 1 && i <= len(plan.users) {
				msg = "user " + strconv.Quote(plan.users[i-1].Username) + ": " + msg[len(m[0]):]
			}
		}
		return fail(errors.New(msg))
	}
	fmt.Fprintf(c.stdout, "imported %d users from Kamailio (%d with passwords, %d with HA1 only)\n", len(users), plan.withPassword, plan.ha1Only)
	if plan.ha1Only > 0 {
		fmt.Fprintf(c.stderr, "users-core: note: the %d HA1-only users can register with Digest MD5 but cannot log in over HTTP until a password is set (users-core user passwd NAME)\n", plan.ha1Only)
	}
	return nil
}
