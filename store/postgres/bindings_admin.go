package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/sip"
)

// BindingByID returns the binding with id, expired or not.
func (db *DB) BindingByID(ctx context.Context, id string) (*sip.Binding, error) {
	const op = "postgres.BindingByID"
	b, err := scanBinding(db.pool.QueryRow(ctx, `SELECT `+bindingColumns+` FROM bindings WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, identity.E(op, identity.CodeNotFound, "registration not found")
	}
	if err != nil {
		return nil, fail(op, err)
	}
	return &b, nil
}
