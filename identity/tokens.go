package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Signer signs JWTs with the current signing key: header alg RS256, kid,
// and typ; payload the JSON of claims. jwks.Keyring satisfies it.
type Signer interface {
	SignJWT(typ string, claims any) (string, error)
}

// AccessTokenType is the header typ of access tokens (RFC 9068).
const AccessTokenType = "at+jwt"

// RefreshTokenPrefix starts every refresh token, so scanners and people
// recognise one (and a verifier can tell it from a JWT without parsing).
const RefreshTokenPrefix = "ucrt_"

// ScopeSIPRegister lets a token register over SIP (RFC 8898 Bearer).
const ScopeSIPRegister = "sip.register"

// AccessClaims are the claims of an access token; names kept compatible
// with the RVoIP users-core plan.
type AccessClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"` // user id
	Audience  []string `json:"aud"`
	ExpiresAt int64    `json:"exp"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	ID        string   `json:"jti"`
	Username  string   `json:"username"`
	Roles     []string `json:"roles"`
	Scope     string   `json:"scope"` // space-separated
}

// TokenConfig sets token lifetimes and names.
type TokenConfig struct {
	Issuer          string
	Audience        []string
	AccessTTL       time.Duration // default 15 minutes
	RefreshIdleTTL  time.Duration // default 30 days
	RefreshMaxTTL   time.Duration // absolute, per family; default 90 days
	RefreshGrace    time.Duration // default 10 seconds
	Now             func() time.Time
	SuccessorSealer *Sealer // seals successors for the grace window
}

// TokenPair is what login and refresh return.
type TokenPair struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    time.Duration
	User         *User
}

// Tokens issues access tokens and rotating refresh tokens, and logs users
// in through the password, the regulator and the signer.
type Tokens struct {
	cfg       TokenConfig
	users     *Service
	store     UserStore
	refresh   RefreshStore
	signer    Signer
	regulator *Regulator
}

// NewTokens returns a Tokens. The user service, refresh store, signer and
// regulator are required.
func NewTokens(cfg TokenConfig, users *Service, refresh RefreshStore, signer Signer, regulator *Regulator) (*Tokens, error) {
	if users == nil || refresh == nil || signer == nil || regulator == nil || cfg.SuccessorSealer == nil {
		return nil, errors.New("identity.NewTokens: users, refresh store, signer, regulator and sealer are required")
	}
	if cfg.Issuer == "" || len(cfg.Audience) == 0 {
		return nil, errors.New("identity.NewTokens: issuer and audience are required")
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = 15 * time.Minute
	}
	if cfg.RefreshIdleTTL <= 0 {
		cfg.RefreshIdleTTL = 30 * 24 * time.Hour
	}
	if cfg.RefreshMaxTTL <= 0 {
		cfg.RefreshMaxTTL = 90 * 24 * time.Hour
	}
	if cfg.RefreshGrace < 0 {
		cfg.RefreshGrace = 0
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Tokens{cfg: cfg, users: users, store: users.store, refresh: refresh, signer: signer, regulator: regulator}, nil
}

// Config returns the token settings in force.
func (t *Tokens) Config() TokenConfig { return t.cfg }

// ErrInvalidCredentials is the one answer to a wrong password, an unknown
// user and a disabled user.
var errInvalidCredentials = &Error{Op: "identity.Login", Code: CodeInvalidCredentials, Message: "invalid username or password"}

// Login checks username and password for a client at addr and issues a
// token pair. Locked usernames and addresses are refused with
// CodeAccountLocked before any lookup or hashing; wrong password, unknown
// user and disabled user all give CodeInvalidCredentials.
func (t *Tokens) Login(ctx context.Context, username, password, addr string) (TokenPair, error) {
	ctx = WithActor(ctx, username, addr)
	if err := t.regulator.Check(ctx, username, addr); err != nil {
		if ErrorCode(err) == CodeAccountLocked {
			emit(ctx, t.users.events, t.now(), ActionLoginFailed, username, OutcomeFailure, "locked")
		}
		return TokenPair{}, err
	}
	u, ok, err := t.users.VerifyPassword(ctx, username, password)
	if err != nil {
		return TokenPair{}, err
	}
	if !ok {
		locked, err := t.regulator.Failure(ctx, username, addr)
		if err != nil {
			return TokenPair{}, err
		}
		emit(ctx, t.users.events, t.now(), ActionLoginFailed, username, OutcomeFailure, "invalid credentials")
		if locked {
			emit(ctx, t.users.events, t.now(), ActionLockout, username, OutcomeSuccess, "too many failures")
		}
		return TokenPair{}, errInvalidCredentials
	}
	if err := t.regulator.Success(ctx, username); err != nil {
		return TokenPair{}, err
	}
	now := t.now()
	if err := t.store.TouchLogin(ctx, u.ID, now); err != nil {
		return TokenPair{}, err
	}
	u.LastLoginAt = now
	emit(WithActor(ctx, u.ID, addr), t.users.events, now, ActionLoginSucceeded, u.ID, OutcomeSuccess, "")
	return t.issueFamily(ctx, u, now)
}

func (t *Tokens) now() time.Time { return t.cfg.Now().UTC().Truncate(time.Millisecond) }

// Issue starts a new refresh-token family for u and returns a token pair.
func (t *Tokens) Issue(ctx context.Context, u *User) (TokenPair, error) {
	return t.issueFamily(ctx, u, t.now())
}

func (t *Tokens) issueFamily(ctx context.Context, u *User, now time.Time) (TokenPair, error) {
	token, rec, err := t.newRefresh(u.ID, uuid.NewString(), "", now, now.Add(t.cfg.RefreshMaxTTL))
	if err != nil {
		return TokenPair{}, err
	}
	if err := t.refresh.CreateRefreshToken(ctx, rec); err != nil {
		return TokenPair{}, err
	}
	return t.pair(u, token, now)
}

// newRefresh makes a refresh token and its record.
func (t *Tokens) newRefresh(userID, family, parent string, now, absolute time.Time) (string, *RefreshToken, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, Internal("identity.Tokens", err)
	}
	token := RefreshTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	idle := now.Add(t.cfg.RefreshIdleTTL)
	if idle.After(absolute) {
		idle = absolute
	}
	return token, &RefreshToken{
		ID: uuid.NewString(), Hash: hashToken(token), FamilyID: family, ParentID: parent, UserID: userID,
		CreatedAt: now, LastUsedAt: now, IdleExpiresAt: idle, AbsoluteExpiresAt: absolute,
	}, nil
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// pair signs an access token for u and pairs it with refresh.
func (t *Tokens) pair(u *User, refresh string, now time.Time) (TokenPair, error) {
	access, err := t.AccessToken(u, now)
	if err != nil {
		return TokenPair{}, err
	}
	return TokenPair{AccessToken: access, RefreshToken: refresh, ExpiresIn: t.cfg.AccessTTL, User: u}, nil
}

// AccessToken signs an access token for u issued at now.
func (t *Tokens) AccessToken(u *User, now time.Time) (string, error) {
	roles := make([]string, len(u.Roles))
	for i, r := range u.Roles {
		roles[i] = string(r)
	}
	c := AccessClaims{
		Issuer:    t.cfg.Issuer,
		Subject:   u.ID,
		Audience:  t.cfg.Audience,
		ExpiresAt: now.Add(t.cfg.AccessTTL).Unix(),
		IssuedAt:  now.Unix(),
		NotBefore: now.Unix(),
		ID:        uuid.NewString(),
		Username:  u.Username,
		Roles:     roles,
		Scope:     "openid profile email " + ScopeSIPRegister,
	}
	tok, err := t.signer.SignJWT(AccessTokenType, c)
	if err != nil {
		return "", Internal("identity.AccessToken", err)
	}
	return tok, nil
}

var errInvalidRefresh = &Error{Op: "identity.Refresh", Code: CodeUnauthorized, Message: "invalid or expired refresh token"}

// Refresh exchanges a refresh token for a new pair. Every refresh rotates:
// the presented token dies and its successor is returned. Presenting a
// token that was already rotated revokes its whole family (RFC 6819
// 5.2.2.3: one of the two holders is a thief), except within the grace
// window, where a concurrent retry receives the same successor.
func (t *Tokens) Refresh(ctx context.Context, token string) (TokenPair, error) {
	if !strings.HasPrefix(token, RefreshTokenPrefix) || len(token) > 128 {
		return TokenPair{}, errInvalidRefresh
	}
	hash := hashToken(token)
	for attempt := 0; attempt < 3; attempt++ {
		old, err := t.refresh.RefreshTokenByHash(ctx, hash)
		if errors.Is(err, ErrNotFound) {
			return TokenPair{}, errInvalidRefresh
		}
		if err != nil {
			return TokenPair{}, err
		}
		now := t.now()
		if !old.RevokedAt.IsZero() || !now.Before(old.IdleExpiresAt) || !now.Before(old.AbsoluteExpiresAt) {
			return TokenPair{}, errInvalidRefresh
		}
		u, err := t.store.UserByID(ctx, old.UserID)
		if errors.Is(err, ErrNotFound) {
			return TokenPair{}, errInvalidRefresh
		}
		if err != nil {
			return TokenPair{}, err
		}
		if actor, source := actorOf(ctx); actor == "" {
			ctx = WithActor(ctx, u.ID, source) // the token's owner acts
		}
		if !old.RotatedAt.IsZero() {
			return t.rotated(ctx, u, old, now)
		}
		if !u.Active {
			if err := t.refresh.RevokeRefreshFamily(ctx, old.FamilyID, now); err != nil {
				return TokenPair{}, err
			}
			return TokenPair{}, errInvalidRefresh
		}
		next, rec, err := t.newRefresh(u.ID, old.FamilyID, old.ID, now, old.AbsoluteExpiresAt)
		if err != nil {
			return TokenPair{}, err
		}
		sealed, err := t.cfg.SuccessorSealer.Seal([]byte(next), successorAAD(old.ID))
		if err != nil {
			return TokenPair{}, Internal("identity.Refresh", err)
		}
		err = t.refresh.RotateRefreshToken(ctx, old.ID, now, sealed, rec)
		if errors.Is(err, ErrConflict) {
			continue // a concurrent refresh won: take the grace path
		}
		if err != nil {
			return TokenPair{}, err
		}
		emit(ctx, t.users.events, now, ActionTokenRefreshed, u.ID, OutcomeSuccess, "")
		return t.pair(u, next, now)
	}
	return TokenPair{}, errInvalidRefresh
}

// rotated handles a token that already has a successor.
func (t *Tokens) rotated(ctx context.Context, u *User, old *RefreshToken, now time.Time) (TokenPair, error) {
	if u.Active && now.Sub(old.RotatedAt) <= t.cfg.RefreshGrace && len(old.SuccessorSealed) > 0 {
		next, err := t.cfg.SuccessorSealer.Open(old.SuccessorSealed, successorAAD(old.ID))
		if err == nil {
			return t.pair(u, string(next), now)
		}
	}
	if err := t.refresh.RevokeRefreshFamily(ctx, old.FamilyID, now); err != nil {
		return TokenPair{}, err
	}
	emit(ctx, t.users.events, now, ActionRefreshReused, u.ID, OutcomeFailure, "family revoked")
	return TokenPair{}, &Error{Op: "identity.Refresh", Code: CodeUnauthorized,
		Message: "refresh token reused; its family has been revoked"}
}

func successorAAD(id string) []byte { return []byte("refresh-successor:" + id) }

// Logout revokes the caller's refresh tokens: the family of refreshToken
// when given (it must belong to userID), else every family of userID.
// Access tokens stay valid until they expire (at most the access TTL).
func (t *Tokens) Logout(ctx context.Context, userID, refreshToken string) error {
	now := t.now()
	emit(ctx, t.users.events, now, ActionLogout, userID, OutcomeSuccess, "")
	if refreshToken != "" {
		rec, err := t.refresh.RefreshTokenByHash(ctx, hashToken(refreshToken))
		if err == nil && rec.UserID == userID {
			return t.refresh.RevokeRefreshFamily(ctx, rec.FamilyID, now)
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil // not the caller's token: nothing to revoke, nothing to reveal
	}
	_, err := t.refresh.RevokeUserRefreshTokens(ctx, userID, now)
	return err
}

// Prune deletes dead refresh tokens and clears successor copies whose
// grace window has passed.
func (t *Tokens) Prune(ctx context.Context) (int, error) {
	now := t.now()
	return t.refresh.PruneRefreshTokens(ctx, now, now.Add(-t.cfg.RefreshGrace))
}
