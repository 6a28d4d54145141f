package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/jwks"
)

// DB persists the signing keys of every node on one database.
var _ jwks.KeyStore = (*DB)(nil)

// keyColumns selects a signing_keys row in the order scanKey reads it.
const keyColumns = `kid, alg, state, public_der, private_sealed, created_at, activate_at, retired_at, remove_at`

// KeySet returns the stored key set, ordered by CreatedAt then KID, with its
// version: 0 and no keys when no key set was ever saved. The version and
// the keys are read in one REPEATABLE READ transaction, one snapshot, so
// they always belong together.
func (db *DB) KeySet(ctx context.Context) (jwks.KeySet, error) {
	const op = "postgres.KeySet"
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return jwks.KeySet{}, fail(op, err)
	}
	defer tx.Rollback(ctx)

	var set jwks.KeySet
	err = tx.QueryRow(ctx, `SELECT version FROM signing_keyset WHERE id = 1`).Scan(&set.Version)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return jwks.KeySet{}, fail(op, err)
	}
	rows, err := tx.Query(ctx, `SELECT `+keyColumns+` FROM signing_keys ORDER BY created_at, kid`)
	if err != nil {
		return jwks.KeySet{}, fail(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return jwks.KeySet{}, fail(op, err)
		}
		set.Keys = append(set.Keys, k)
	}
	if err := rows.Err(); err != nil {
		return jwks.KeySet{}, fail(op, err)
	}
	return set, nil
}

// scanKey reads a row selected with keyColumns.
func scanKey(s rowScanner) (jwks.StoredKey, error) {
	var (
		k                  jwks.StoredKey
		state              string
		created, activate  int64
		retired, removeAt  *int64
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
// nothing. The version bump is the compare-and-swap: UPDATE ... WHERE
// version = prev. A concurrent save from another node waits for this one's
// row lock, then re-checks the condition against the committed version and
// matches no row, so of several nodes saving from one version exactly one
// wins. The replacement of the keys is in the same transaction. Keys with
// an empty or repeated KID or an unknown state, or more than one active
// key, match identity.ErrInvalid and change nothing.
func (db *DB) SaveKeySet(ctx context.Context, prev int64, keys []jwks.StoredKey) (int64, error) {
	const op = "postgres.SaveKeySet"
	if err := checkKeys(op, keys); err != nil {
		return 0, err
	}
	next := prev + 1
	err := db.inTx(ctx, op, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE signing_keyset SET version = $1 WHERE id = 1 AND version = $2`, next, prev)
		if err != nil {
			return fail(op, err)
		}
		if tag.RowsAffected() == 0 {
			return jwks.ErrKeySetChanged
		}
		if _, err := tx.Exec(ctx, `DELETE FROM signing_keys`); err != nil {
			return fail(op, err)
		}
		var qs []queued
		for _, k := range keys {
			qs = append(qs, queued{sql: `INSERT INTO signing_keys (` + keyColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				args: []any{k.KID, k.Algorithm, string(k.State), nonNil(k.PublicDER), nonNil(k.PrivateSealed),
					millis(k.CreatedAt), millis(k.ActivateAt), optMillis(k.RetiredAt), optMillis(k.RemoveAt)}})
		}
		return sendQueued(ctx, tx, op, qs)
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
