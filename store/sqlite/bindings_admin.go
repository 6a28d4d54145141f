package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/sip"
)

// BindingByID returns the binding with id, expired or not.
func (db *DB) BindingByID(ctx context.Context, id string) (*sip.Binding, error) {
	const op = "sqlite.BindingByID"
	b, err := scanBinding(db.r.QueryRowContext(ctx, `SELECT `+bindingColumns+` FROM bindings WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, identity.E(op, identity.CodeNotFound, "registration not found")
	}
	if err != nil {
		return nil, storeErr(op, err)
	}
	return &b, nil
}
