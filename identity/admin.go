package identity

import (
	"context"
	"slices"
	"strings"
)

// ProfileUpdate names the fields of a user to change; nil leaves a field
// as it is. Active is for administrators only: the HTTP layer decides who
// may send what.
type ProfileUpdate struct {
	Email       *string
	DisplayName *string
	Active      *bool
}

// UpdateUser validates and applies upd to the user with id. Disabling the
// last active admin is refused with CodeConflict; a taken email with
// CodeConflict.
func (s *Service) UpdateUser(ctx context.Context, id string, upd ProfileUpdate) (*User, error) {
	if upd.Email != nil {
		if err := ValidateEmail(*upd.Email); err != nil {
			return nil, err
		}
	}
	if upd.DisplayName != nil {
		if err := ValidateDisplayName(*upd.DisplayName); err != nil {
			return nil, err
		}
	}
	if upd.Active != nil && !*upd.Active {
		if err := s.guardLastAdmin(ctx, "identity.UpdateUser", id, "disable"); err != nil {
			return nil, err
		}
	}
	var wasActive bool
	u, err := s.store.UpdateUser(ctx, id, func(u *User) error {
		wasActive = u.Active
		if upd.Email != nil {
			u.Email = *upd.Email
		}
		if upd.DisplayName != nil {
			u.DisplayName = *upd.DisplayName
		}
		if upd.Active != nil {
			u.Active = *upd.Active
		}
		u.UpdatedAt = s.timestamp()
		return nil
	})
	s.changed()
	if err != nil {
		return nil, err
	}
	switch {
	case wasActive && !u.Active:
		emit(ctx, s.events, u.UpdatedAt, ActionUserDisabled, id, OutcomeSuccess, "")
		if err := s.revokeTokens(ctx, id); err != nil {
			return nil, err
		}
	case !wasActive && u.Active:
		emit(ctx, s.events, u.UpdatedAt, ActionUserEnabled, id, OutcomeSuccess, "")
	}
	if upd.Email != nil || upd.DisplayName != nil {
		emit(ctx, s.events, u.UpdatedAt, ActionUserUpdated, id, OutcomeSuccess, "profile")
	}
	return u, nil
}

// SetRoles replaces the roles of the user with id. Demoting the last
// active admin is refused with CodeConflict.
func (s *Service) SetRoles(ctx context.Context, id string, roles []Role) (*User, error) {
	norm, err := NormalizeRoles(roles)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(norm, RoleAdmin) {
		if err := s.guardLastAdmin(ctx, "identity.SetRoles", id, "demote"); err != nil {
			return nil, err
		}
	}
	var before []Role
	u, err := s.store.UpdateUser(ctx, id, func(u *User) error {
		before = u.Roles
		u.Roles = norm
		u.UpdatedAt = s.timestamp()
		return nil
	})
	s.changed()
	if err != nil {
		return nil, err
	}
	emit(ctx, s.events, u.UpdatedAt, ActionRolesChanged, id, OutcomeSuccess, joinRoles(before)+" -> "+joinRoles(norm))
	return u, nil
}

func joinRoles(rs []Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

// ChangePassword sets a new password for the user with id after checking
// the old one (self-service). A wrong old password is CodeForbidden, after
// the same Argon2id work as a right one.
func (s *Service) ChangePassword(ctx context.Context, id, oldPassword, newPassword string) error {
	const op = "identity.ChangePassword"
	u, err := s.store.UserByID(ctx, id)
	if err != nil {
		return err
	}
	creds, err := s.store.Credentials(ctx, id)
	if err != nil {
		return err
	}
	if creds.PasswordHash == "" {
		s.hasher.DummyVerify(ctx, oldPassword)
		return E(op, CodeForbidden, "the old password is not correct")
	}
	ok, _, err := s.hasher.Verify(ctx, creds.PasswordHash, oldPassword)
	if err != nil {
		return Internal(op, err)
	}
	if !ok {
		emit(ctx, s.events, s.timestamp(), ActionPasswordChanged, id, OutcomeFailure, "wrong old password")
		return E(op, CodeForbidden, "the old password is not correct")
	}
	return s.SetPassword(ctx, u.ID, newPassword, nil)
}
