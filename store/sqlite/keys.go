package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/jwks"
)

// DB persists the signing keys of every node on one database file.
var _ jwks.KeyStore = (*DB)(nil)

// keyColumns selects a signing_keys row in the order scanKey reads it.
const keyColumns = `kid, alg, state, public_der, private_sealed, created_at, activate_at, retired_at, remove_at`

// KeySet returns the stored key set, ordered by CreatedAt then KID, with its
// version: 0 and no keys when no key set was ever saved. The version and
// the keys are read in one transaction, so they always belong together.
func (db *DB) KeySet(ctx context.Context) (jwks.KeySet, error) {
	const op = "sqlite.KeySet"
	// A deferred transaction on a WAL reader keeps the snapshot of its
	// first read until it ends: a save committed in between is seen by
	// neither query or by both.
	tx, err := db.r.BeginTx(ctx, nil)
	if err != nil {
		return jwks.KeySet{}, storeErr(op, err)
	}
	defer tx.Rollback()

	var set jwks.KeySet
	err = tx.QueryRowContext(ctx, `SELECT version FROM signing_keyset WHERE id = 1`).Scan(&set.Version)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return jwks.KeySet{}, storeErr(op, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+keyColumns+` FROM signing_keys ORDER BY created_at, kid`)
	if err != nil {
		return jwks.KeySet{}, storeErr(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return jwks.KeySet{}, storeErr(op, err)
		}
		set.Keys = append(set.Keys, k)
	}
	if err := rows.Err(); err != nil {
		return jwks.KeySet{}, storeErr(op, err)
	}
	return set, nil
}

// scanKey reads a row selected with keyColumns.
func scanKey(s rowScanner) (jwks.StoredKey, error) {
	var (
		k                  jwks.StoredKey
		state              string
		created, activate  int64
		retired, removeAt  sql.NullInt64
		public, privSealed []byte
	)
	if err := s.Scan(&k.KID, &k.Algorithm, &state, &public, &privSealed, &created, &activate, &retired, &removeAt); err != nil {
		return jwks.StoredKey{}, err
	}
	k.State = jwks.KeyState(state)
	k.PublicDER, k.PrivateSealed = nonNil(public), nonNil(privSealed)
	k.CreatedAt, k.ActivateAt = fromMillis(created), fromMillis(activate)
	k.RetiredAt, k.RemoveAt = optTime(retired), optTime(removeAt)
	return k, nil
}

// SaveKeySet replaces the stored key set with keys and returns the new
// version, prev+1, if the stored version is still prev (0 when none was
// saved). Otherwise it returns jwks.ErrKeySetChanged itself and changes
// nothing. The check, the replacement and the version bump are one write
// transaction, and BEGIN IMMEDIATE serializes it with every other writer
// on the file, so of several nodes saving from one version exactly one
// wins. Keys with an empty or repeated KID or an unknown state, or more
// than one active key, match identity.ErrInvalid and change nothing.
func (db *DB) SaveKeySet(ctx context.Context, prev int64, keys []jwks.StoredKey) (int64, error) {
	const op = "sqlite.SaveKeySet"
	if err := checkKeys(op, keys); err != nil {
		return 0, err
	}
	next := prev + 1
	err := db.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		var cur int64
		err := tx.QueryRowContext(ctx, `SELECT version FROM signing_keyset WHERE id = 1`).Scan(&cur)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return storeErr(op, err)
		}
		if cur != prev {
			return jwks.ErrKeySetChanged
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM signing_keys`); err != nil {
			return storeErr(op, err)
		}
		if len(keys) > 0 {
			stmt, err := tx.PrepareContext(ctx, `INSERT INTO signing_keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
			if err != nil {
				return storeErr(op, err)
			}
			defer stmt.Close()
			for _, k := range keys {
				_, err := stmt.ExecContext(ctx, k.KID, k.Algorithm, string(k.State), nonNil(k.PublicDER), nonNil(k.PrivateSealed),
					millis(k.CreatedAt), millis(k.ActivateAt), optMillis(k.RetiredAt), optMillis(k.RemoveAt))
				if err != nil {
					return storeErr(op, err)
				}
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO signing_keyset (id, version) VALUES (1, ?)
	ON CONFLICT (id) DO UPDATE SET version = excluded.version`, next); err != nil {
			return storeErr(op, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return next, nil
}

// checkKeys refuses key sets that cannot be stored or that break the
// invariant of jwks.StoredKey: at most one key signs at a time.
func checkKeys(op string, keys []jwks.StoredKey) error {
	seen := make(map[string]bool, len(keys))
	active := 0
	for _, k := range keys {
		if k.KID == "" {
			return identity.Invalid(op, "kid", "a signing key has no kid")
		}
		if seen[k.KID] {
			return identity.Invalid(op, "kid", "two signing keys with kid %q", k.KID)
		}
		seen[k.KID] = true
		switch k.State {
		case jwks.StateActive:
			active++
		case jwks.StateNext, jwks.StateRetired:
		default:
			return identity.Invalid(op, "state", "signing key %q has unknown state %q", k.KID, k.State)
		}
	}
	if active > 1 {
		return identity.Invalid(op, "state", "%d active signing keys, want at most one", active)
	}
	return nil
}

// optMillis is the stored form of an optional time: NULL when zero.
func optMillis(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return millis(t)
}

// optTime reads an optional time back: zero when NULL.
func optTime(ms sql.NullInt64) time.Time {
	if !ms.Valid {
		return time.Time{}
	}
	return fromMillis(ms.Int64)
}

// nonNil returns b, or an empty slice when b is nil: a nil []byte binds as
// NULL, which NOT NULL BLOB columns refuse, and reads give empty values as
// non-nil.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
