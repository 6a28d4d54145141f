// Package store opens the persistence backend named by a database URL.
// Backends live in subpackages (store/sqlite for one node, store/postgres
// for several nodes on one database) and implement the contracts declared
// by identity, jwks and sip; store/storetest is the conformance suite they
// all pass.
package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/jwks"
	"github.com/rvoip/users-core/sip"
	"github.com/rvoip/users-core/store/postgres"
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
	sip.NonceCountStore
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}

// Both backends are a Store.
var (
	_ Store = (*sqlite.DB)(nil)
	_ Store = (*postgres.DB)(nil)
)

// Open opens the database named by url and applies pending migrations.
// Supported:
//
//   - sqlite://PATH (a relative PATH is relative to the working directory;
//     sqlite:///abs/path is absolute). The file is created when missing. A
//     query string (such as the RVoIP example's ?mode=rwc) is ignored: the
//     database is always opened read-write.
//   - postgres://user:password@host:port/dbname?params, or postgresql://.
//     The database must exist. The query string carries libpq's parameters
//     (sslmode, connect_timeout, ...) and the pool's (pool_max_conns,
//     pool_max_conn_lifetime, ...): see store/postgres.
func Open(ctx context.Context, url string) (Store, error) {
	if strings.HasPrefix(url, "sqlite:") {
		url, _, _ = strings.Cut(url, "?")
	}
	switch {
	case strings.HasPrefix(url, "sqlite://"):
		return opened(sqlite.Open(ctx, strings.TrimPrefix(url, "sqlite://")))
	case strings.HasPrefix(url, "sqlite:"):
		return opened(sqlite.Open(ctx, strings.TrimPrefix(url, "sqlite:")))
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return opened(postgres.Open(ctx, url))
	}
	scheme, _, ok := strings.Cut(url, "://")
	if !ok {
		// Not echoed: a URL without a scheme may still hold a password.
		return nil, fmt.Errorf("store: the database URL has no scheme (want sqlite://PATH or postgres://HOST/DB)")
	}
	return nil, fmt.Errorf("store: unsupported database scheme %q (supported: sqlite, postgres, postgresql)", scheme)
}

// opened returns a backend's Open result as a Store: nil, not a Store
// holding a nil pointer, when err is set.
func opened[T Store](db T, err error) (Store, error) {
	if err != nil {
		return nil, err
	}
	return db, nil
}
