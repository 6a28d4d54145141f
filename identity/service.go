package identity

import (
	"context"
	"crypto/rand"
	"errors"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Service manages users: validation, password hashing, SIP credential
// derivation and the rules that span several records (the last active
// admin). The CLI and the HTTP API both go through it; nothing else writes
// users.
type Service struct {
	store   UserStore
	refresh RefreshStore
	events  EventSink
	hasher  *Hasher
	policy  PasswordPolicy
	sealer  *Sealer
	realms  []string
	now     func() time.Time
	creds   *credCache // DigestHA1 answers; nil when turned off
	// dummy is a sealed HA1 that DigestHA1 opens when it has none to
	// open, so that every answer costs the same unsealing work.
	dummy SIPCredential
}

// ServiceConfig holds what a Service needs. Realms are the SIP domains; an
// HA1 per realm and Digest algorithm is derived whenever a password is set.
type ServiceConfig struct {
	Store  UserStore
	Hasher *Hasher
	Policy PasswordPolicy
	Sealer *Sealer
	Realms []string
	Now    func() time.Time // nil means time.Now
	// Refresh, when set, has every refresh token of a user revoked when
	// the password changes or the user is disabled.
	Refresh RefreshStore
	// Events receives the audit events of user changes (nil: dropped).
	Events EventSink
	// CacheEntries bounds the DigestHA1 cache (see DigestHA1): 0 means
	// DefaultCacheEntries, a negative value turns the cache off.
	CacheEntries int
	// CacheCheckInterval is how often, at most, DigestHA1 reads the store's
	// StampUsers, and so how long a change made by another process may take
	// to be seen: 0 means DefaultCheckInterval, a negative value turns the
	// cache off.
	CacheCheckInterval time.Duration
}

// NewService returns a Service for cfg.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Store == nil || cfg.Hasher == nil || cfg.Sealer == nil {
		return nil, errors.New("identity.NewService: store, hasher and sealer are required")
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if cfg.Events == nil {
		cfg.Events = nopSink{}
	}
	dummy, err := cfg.Sealer.Seal([]byte(strings.Repeat("0", 64)), SIPCredentialAAD("", "", SHA256, false))
	if err != nil {
		return nil, Internal("identity.NewService", err)
	}
	return &Service{
		store:   cfg.Store,
		refresh: cfg.Refresh,
		events:  cfg.Events,
		hasher:  cfg.Hasher,
		policy:  cfg.Policy,
		sealer:  cfg.Sealer,
		realms:  append([]string(nil), cfg.Realms...),
		now:     now,
		creds:   newCredCache(cfg.Store, cfg.CacheEntries, cfg.CacheCheckInterval, now),
		dummy:   SIPCredential{Algorithm: SHA256, Sealed: dummy},
	}, nil
}

// changed forgets the cached DigestHA1 answers after a write to users. It
// runs whether or not the write reported success: a failed commit may
// still have landed, and a flush is cheap.
func (s *Service) changed() {
	if s.creds != nil {
		s.creds.flush()
	}
}

// Hasher returns the service's password hasher.
func (s *Service) Hasher() *Hasher { return s.hasher }

// Realms returns the SIP realms HA1 values are derived for.
func (s *Service) Realms() []string { return append([]string(nil), s.realms...) }

func (s *Service) timestamp() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// NewUser describes a user to create.
type NewUser struct {
	Username    string
	Password    string
	Email       string
	DisplayName string
	Roles       []Role // empty means RoleUser
	Disabled    bool
	// TokenOnly users get no HA1 values: they can register over SIP with
	// Bearer tokens only.
	TokenOnly bool
	// KnownHA1s, with an empty Password, imports a user from another
	// registrar that kept only HA1 values: Digest works for those realms
	// and algorithms, password login does not until a password is set.
	KnownHA1s []KnownHA1
	// SkipPasswordPolicy imports a password that already exists in the
	// field (from another registrar) without the length and
	// common-password rules; it must still be non-empty valid UTF-8.
	SkipPasswordPolicy bool
}

// KnownHA1 is an HA1 computed elsewhere (lowercase hex).
type KnownHA1 struct {
	Realm     string
	Algorithm DigestAlgorithm
	Qualified bool // over "user@realm"
	HA1       string
}

// CreateUser validates nu, hashes its password, derives its SIP credentials
// and stores the user. Errors: CodeInvalid naming the field, CodeConflict
// for a taken username or email.
func (s *Service) CreateUser(ctx context.Context, nu NewUser) (*User, error) {
	u, creds, err := s.prepare(ctx, nu)
	if err != nil {
		return nil, err
	}
	err = s.store.CreateUser(ctx, u, creds)
	s.changed()
	if err != nil {
		return nil, err
	}
	emit(ctx, s.events, u.CreatedAt, ActionUserCreated, u.ID, OutcomeSuccess, "username "+u.Username)
	return u, nil
}

// ImportUsers creates every user of list or, when any of them fails
// validation or conflicts, none. Passwords are hashed in parallel within the
// hasher's concurrency bound; progress, when not nil, is called after each
// hash with the number done so far. The error of a failing entry names its
// position (1-based) in list.
func (s *Service) ImportUsers(ctx context.Context, list []NewUser, progress func(done int)) ([]*User, error) {
	const op = "identity.ImportUsers"
	seen := make(map[string]int, len(list))
	for i, nu := range list {
		key := strings.ToLower(nu.Username)
		if j, dup := seen[key]; dup {
			return nil, E(op, CodeConflict, "entry %d: username %q repeats entry %d", i+1, nu.Username, j+1)
		}
		seen[key] = i
	}
	users := make([]*User, len(list))
	creds := make([]*Credentials, len(list))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		done     int
		next     = make(chan int)
	)
	workers := s.hasher.MaxConcurrent()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				u, c, err := s.prepare(ctx, list[i])
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = entryError(op, i, err)
					cancel()
				}
				users[i], creds[i] = u, c
				done++
				if progress != nil && err == nil {
					progress(done)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range list {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	err := s.store.CreateUsers(ctx, users, creds)
	s.changed()
	if err != nil {
		return nil, err
	}
	emit(ctx, s.events, s.timestamp(), ActionUserCreated, "", OutcomeSuccess, "imported "+strconv.Itoa(len(users))+" users")
	return users, nil
}

// entryError prefixes err's message with the 1-based entry number.
func entryError(op string, i int, err error) error {
	var e *Error
	if errors.As(err, &e) && e.Code != CodeInternal {
		c := *e
		c.Op = op
		c.Message = "entry " + strconv.Itoa(i+1) + ": " + e.Message
		return &c
	}
	return err
}

// prepare validates nu and builds the user and its credentials, hashing the
// password.
func (s *Service) prepare(ctx context.Context, nu NewUser) (*User, *Credentials, error) {
	const op = "identity.CreateUser"
	if err := ValidateUsername(nu.Username); err != nil {
		return nil, nil, err
	}
	if err := ValidateEmail(nu.Email); err != nil {
		return nil, nil, err
	}
	if err := ValidateDisplayName(nu.DisplayName); err != nil {
		return nil, nil, err
	}
	roles, err := NormalizeRoles(nu.Roles)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case nu.Password == "" && len(nu.KnownHA1s) > 0:
	case nu.SkipPasswordPolicy:
		if err := s.policy.CheckStorable(nu.Password); err != nil {
			return nil, nil, err
		}
	default:
		if err := s.policy.Check(nu.Username, nu.Password); err != nil {
			return nil, nil, err
		}
	}
	now := s.timestamp()
	u := &User{
		ID:          uuid.NewString(),
		Username:    nu.Username,
		Email:       nu.Email,
		DisplayName: nu.DisplayName,
		Roles:       roles,
		Active:      !nu.Disabled,
		TokenOnly:   nu.TokenOnly,
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	if nu.Password == "" {
		creds, err := s.sealKnown(op, u, nu.KnownHA1s)
		return u, creds, err
	}
	creds, err := s.credentials(ctx, op, u, nu.Password, nu.TokenOnly)
	if err != nil {
		return nil, nil, err
	}
	return u, creds, nil
}

// sealKnown turns imported HA1 values into credentials without a
// password hash.
func (s *Service) sealKnown(op string, u *User, known []KnownHA1) (*Credentials, error) {
	creds := &Credentials{}
	for _, k := range known {
		h := strings.ToLower(k.HA1)
		want := 64
		if k.Algorithm == MD5 {
			want = 32
		}
		if len(h) != want || strings.Trim(h, "0123456789abcdef") != "" {
			return nil, Invalid(op, "ha1", "HA1 for realm %q is not %d hex digits", k.Realm, want)
		}
		if k.Realm == "" || strings.ContainsAny(k.Realm, "\"\\\r\n") {
			return nil, Invalid(op, "realm", "realm %q is not usable", k.Realm)
		}
		sealed, err := s.sealer.Seal([]byte(h), SIPCredentialAAD(u.ID, k.Realm, k.Algorithm, k.Qualified))
		if err != nil {
			return nil, Internal(op, err)
		}
		creds.SIP = append(creds.SIP, SIPCredential{Realm: k.Realm, Algorithm: k.Algorithm, Qualified: k.Qualified, Sealed: sealed})
	}
	return creds, nil
}

// credentials hashes password and, unless tokenOnly, derives u's HA1s.
func (s *Service) credentials(ctx context.Context, op string, u *User, password string, tokenOnly bool) (*Credentials, error) {
	phc, err := s.hasher.Hash(ctx, password)
	if err != nil {
		return nil, Internal(op, err)
	}
	creds := &Credentials{PasswordHash: phc}
	if !tokenOnly {
		creds.SIP, err = DeriveSIPCredentials(s.sealer, u.ID, u.Username, password, s.realms)
		if err != nil {
			return nil, Internal(op, err)
		}
	}
	return creds, nil
}

// User returns the user whose id or username (case-insensitive) is ref.
func (s *Service) User(ctx context.Context, ref string) (*User, error) {
	if _, err := uuid.Parse(ref); err == nil {
		u, err := s.store.UserByID(ctx, ref)
		if !errors.Is(err, ErrNotFound) {
			return u, err
		}
	}
	return s.store.UserByName(ctx, ref)
}

// CachedUser returns the user with ID id, like User with an ID, through
// the cache DigestHA1 uses (same bound, same staleness: at most one
// CacheCheckInterval older than the database, LastLoginAt older still).
// It is for hot paths that check a token's subject on every request, such
// as a SIP REGISTER with a Bearer token; admin views use User. A missing
// user matches ErrNotFound.
func (s *Service) CachedUser(ctx context.Context, id string) (*User, error) {
	if s.creds == nil {
		return s.store.UserByID(ctx, id)
	}
	k := credKey{user: "\x00id:" + id} // no username key starts with NUL
	gen, usable := s.creds.begin(ctx)
	if usable {
		if e, hit := s.creds.get(k); hit {
			if e.user == nil {
				return nil, E("identity.CachedUser", CodeNotFound, "user not found")
			}
			return e.user.Clone(), nil
		}
	}
	u, err := s.store.UserByID(ctx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if usable {
		s.creds.put(k, &credEntry{user: u}, gen)
	}
	if u == nil {
		return nil, E("identity.CachedUser", CodeNotFound, "user not found")
	}
	return u.Clone(), nil
}

// ListUsers returns one page of users.
func (s *Service) ListUsers(ctx context.Context, f UserFilter) (UserPage, error) {
	return s.store.ListUsers(ctx, f)
}

// SetPassword checks password against the policy and replaces the user's
// password hash and SIP credentials. tokenOnly, when not nil, also changes
// whether the user gets HA1 values; nil keeps the current setting.
func (s *Service) SetPassword(ctx context.Context, id, password string, tokenOnly *bool) error {
	const op = "identity.SetPassword"
	u, err := s.store.UserByID(ctx, id)
	if err != nil {
		return err
	}
	if err := s.policy.Check(u.Username, password); err != nil {
		return err
	}
	only := u.TokenOnly
	if tokenOnly != nil {
		only = *tokenOnly
	}
	creds, err := s.credentials(ctx, op, u, password, only)
	if err != nil {
		return err
	}
	err = s.store.SetCredentials(ctx, id, creds, only, s.timestamp())
	s.changed()
	if err != nil {
		return err
	}
	emit(ctx, s.events, s.timestamp(), ActionPasswordChanged, id, OutcomeSuccess, "")
	return s.revokeTokens(ctx, id)
}

// revokeTokens revokes every refresh token of the user, when the service
// has a refresh store.
func (s *Service) revokeTokens(ctx context.Context, id string) error {
	if s.refresh == nil {
		return nil
	}
	_, err := s.refresh.RevokeUserRefreshTokens(ctx, id, s.timestamp())
	return err
}

// SetActive enables or disables the user with id. Disabling the last
// active admin is refused with CodeConflict.
func (s *Service) SetActive(ctx context.Context, id string, active bool) (*User, error) {
	if !active {
		if err := s.guardLastAdmin(ctx, "identity.SetActive", id, "disable"); err != nil {
			return nil, err
		}
	}
	u, err := s.store.UpdateUser(ctx, id, func(u *User) error {
		u.Active = active
		u.UpdatedAt = s.timestamp()
		return nil
	})
	s.changed()
	if err != nil {
		return u, err
	}
	if active {
		emit(ctx, s.events, u.UpdatedAt, ActionUserEnabled, id, OutcomeSuccess, "")
		return u, nil
	}
	emit(ctx, s.events, u.UpdatedAt, ActionUserDisabled, id, OutcomeSuccess, "")
	return u, s.revokeTokens(ctx, id)
}

// DeleteUser removes the user with id and everything it owns. Deleting the
// last active admin is refused with CodeConflict.
func (s *Service) DeleteUser(ctx context.Context, id string) error {
	if err := s.guardLastAdmin(ctx, "identity.DeleteUser", id, "delete"); err != nil {
		return err
	}
	err := s.store.DeleteUser(ctx, id)
	s.changed()
	if err != nil {
		return err
	}
	emit(ctx, s.events, s.timestamp(), ActionUserDeleted, id, OutcomeSuccess, "")
	return nil
}

// guardLastAdmin refuses an action that would leave no active admin.
func (s *Service) guardLastAdmin(ctx context.Context, op, id, action string) error {
	u, err := s.store.UserByID(ctx, id)
	if err != nil {
		return err
	}
	if !u.Active || !u.HasRole(RoleAdmin) {
		return nil
	}
	active := true
	page, err := s.store.ListUsers(ctx, UserFilter{Active: &active, Role: RoleAdmin, Limit: 2})
	if err != nil {
		return err
	}
	if len(page.Users) < 2 {
		return E(op, CodeConflict, "cannot %s %q: it is the last active admin", action, u.Username)
	}
	return nil
}

// VerifyPassword checks username and password. It returns the user and
// true only for an active user with that password; a wrong password, an
// unknown user and a disabled user all return false with no error, after
// the same Argon2id work, so timing does not tell them apart. err is for
// broken infrastructure or a cancelled ctx. A successful verify of a hash
// made with outdated parameters rehashes and saves it.
func (s *Service) VerifyPassword(ctx context.Context, username, password string) (*User, bool, error) {
	const op = "identity.VerifyPassword"
	u, err := s.store.UserByName(ctx, username)
	if errors.Is(err, ErrNotFound) {
		s.hasher.DummyVerify(ctx, password)
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	creds, err := s.store.Credentials(ctx, u.ID)
	if err != nil {
		return nil, false, err
	}
	if creds.PasswordHash == "" {
		s.hasher.DummyVerify(ctx, password)
		return nil, false, nil
	}
	ok, rehash, err := s.hasher.Verify(ctx, creds.PasswordHash, password)
	if err != nil {
		return nil, false, Internal(op, err)
	}
	if !ok || !u.Active {
		return nil, false, nil
	}
	if rehash {
		phc, err := s.hasher.Hash(ctx, password)
		if err != nil {
			return nil, false, Internal(op, err)
		}
		if err := s.store.SetPasswordHash(ctx, u.ID, phc); err != nil {
			return nil, false, err
		}
	}
	return u, true, nil
}

// EnsureAdmin creates user "admin" with a random password when the store
// has no users at all, and returns that password (to be shown once). On a
// store with users it does nothing and returns "".
func (s *Service) EnsureAdmin(ctx context.Context) (string, error) {
	// Is there any user? One row of the username index answers it; a
	// count would scan the whole index on every start (65-234 ms with a
	// million users).
	page, err := s.store.ListUsers(ctx, UserFilter{Limit: 1})
	if err != nil || len(page.Users) > 0 {
		return "", err
	}
	length := s.policy.MinLength
	if length < 24 {
		length = 24
	}
	if s.policy.MaxLength > 0 && length > s.policy.MaxLength {
		length = s.policy.MaxLength
	}
	password, err := RandomPassword(length)
	if err != nil {
		return "", Internal("identity.EnsureAdmin", err)
	}
	_, err = s.CreateUser(ctx, NewUser{Username: "admin", Password: password, Roles: []Role{RoleAdmin, RoleUser}})
	if errors.Is(err, ErrConflict) {
		return "", nil // another node created it first
	}
	if err != nil {
		return "", err
	}
	return password, nil
}

// RandomPassword returns n characters drawn uniformly from letters and
// digits with crypto/rand (about 5.95 bits each).
func RandomPassword(n int) (string, error) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]byte, 0, n)
	buf := make([]byte, n*2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			// 248 = 4*62: rejecting larger bytes keeps the draw uniform.
			if b < 248 && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out), nil
}

// SortedRealms returns realms de-duplicated (case-insensitively) and sorted,
// for stable configuration output.
func SortedRealms(realms []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range realms {
		k := strings.ToLower(strings.TrimSpace(r))
		if k != "" && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// DigestHA1 returns the HA1 (lowercase hex) of the active, Digest-enabled
// user called username (case-insensitive) for realm and alg, with the
// user. qualified asks for the HA1 over "username@realm" (the client sent
// its Digest username as user@domain). ok is false, with no error, when
// there is no such user, the user is disabled or token-only, or has no HA1
// for that realm and algorithm: the caller must treat all of these alike,
// and every answer, ok or not, costs one HA1 unsealing. err is for broken
// infrastructure.
//
// Answers, negative ones included, are cached (ServiceConfig.CacheEntries)
// with the HA1 still sealed. Every user change made through this Service
// empties the cache at once. A change made elsewhere (the CLI on the same
// database file, another node) is seen within CacheCheckInterval: the
// store's StampUsers is read at most that often and a change empties the
// cache; a store without ChangeStamper gets entries that live for one
// interval. So an answer is at most one interval older than the database.
// The returned user's LastLoginAt is the exception: a login does not empty
// the cache (see StampUsers), so it may be older still.
func (s *Service) DigestHA1(ctx context.Context, username, realm string, alg DigestAlgorithm, qualified bool) (u *User, ha1 string, ok bool, err error) {
	if s.creds == nil {
		e, err := s.lookupHA1(ctx, username, realm, alg, qualified)
		if err != nil {
			return nil, "", false, err
		}
		return s.answerHA1(e)
	}
	k := credKey{user: UsernameKey(username), realm: realm, alg: alg, qualified: qualified}
	gen, usable := s.creds.begin(ctx)
	if usable {
		if e, hit := s.creds.get(k); hit {
			return s.answerHA1(e)
		}
	}
	e, err := s.lookupHA1(ctx, username, realm, alg, qualified)
	if err != nil {
		return nil, "", false, err
	}
	if usable {
		s.creds.put(k, e, gen)
	}
	return s.answerHA1(e)
}

// lookupHA1 reads the DigestHA1 answer from the store: a nil user in the
// entry is a negative answer.
func (s *Service) lookupHA1(ctx context.Context, username, realm string, alg DigestAlgorithm, qualified bool) (*credEntry, error) {
	if r, ok := s.store.(DigestCredentialReader); ok {
		return lookupDigest(ctx, r, username, realm, alg, qualified)
	}
	u, err := s.store.UserByName(ctx, username)
	if errors.Is(err, ErrNotFound) {
		return &credEntry{}, nil
	}
	if err != nil {
		return nil, err
	}
	if !u.Active || u.TokenOnly {
		return &credEntry{}, nil
	}
	creds, err := s.store.Credentials(ctx, u.ID)
	if errors.Is(err, ErrNotFound) {
		return &credEntry{}, nil // deleted since UserByName
	}
	if err != nil {
		return nil, err
	}
	return digestEntry(u, creds.SIP, realm, alg, qualified), nil
}

// answerHA1 unseals the HA1 of e. A negative entry unseals the dummy, so
// that a cached "no" costs what a cached "yes" does.
func (s *Service) answerHA1(e *credEntry) (*User, string, bool, error) {
	const op = "identity.DigestHA1"
	if e.user == nil {
		if _, err := s.sealer.OpenHA1("", s.dummy); err != nil {
			return nil, "", false, Internal(op, err)
		}
		return nil, "", false, nil
	}
	ha1, err := s.sealer.OpenHA1(e.user.ID, e.cred)
	if err != nil {
		return nil, "", false, Internal(op, err)
	}
	return e.user.Clone(), ha1, true, nil
}
