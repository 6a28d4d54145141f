// Package store opens the persistence backend named by a database URL.
// Backends live in subpackages (store/sqlite; store/postgres later) and
// implement the contracts declared by identity, jwks and sip;
// store/storetest is the conformance suite they all pass.
package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/jwks"
	"github.com/rvoip/users-core/sip"
	"github.com/rvoip/users-core/store/sqlite"
)

// Store is everything users-core persists.
type Store interface {
	identity.UserStore
	identity.SecretStore
	identity.RefreshStore
	identity.AttemptStore
	identity.APIKeyStore
	identity.AuditStore
	jwks.KeyStore
	sip.BindingStore
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}

// Open opens (creating if needed) the database named by url and applies
// pending migrations. Supported: sqlite://PATH (a relative PATH is relative
// to the working directory; sqlite:///abs/path is absolute). A query string
// (such as the RVoIP example's ?mode=rwc) is ignored: the database is
// always opened read-write and created when missing.
func Open(ctx context.Context, url string) (Store, error) {
	if strings.HasPrefix(url, "sqlite:") {
		url, _, _ = strings.Cut(url, "?")
	}
	switch {
	case strings.HasPrefix(url, "sqlite://"):
		return sqlite.Open(ctx, strings.TrimPrefix(url, "sqlite://"))
	case strings.HasPrefix(url, "sqlite:"):
		return sqlite.Open(ctx, strings.TrimPrefix(url, "sqlite:"))
	}
	scheme, _, ok := strings.Cut(url, "://")
	if !ok {
		return nil, fmt.Errorf("store: database URL %q has no scheme (want sqlite://PATH)", url)
	}
	return nil, fmt.Errorf("store: unsupported database scheme %q (supported: sqlite)", scheme)
}
