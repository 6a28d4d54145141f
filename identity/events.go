package identity

import (
	"context"
	"time"
)

// Actions recorded for the audit trail and counted by metrics.
const (
	ActionLoginSucceeded  = "login.succeeded"
	ActionLoginFailed     = "login.failed"
	ActionLockout         = "lockout"
	ActionTokenRefreshed  = "token.refreshed"
	ActionRefreshReused   = "token.reuse_detected"
	ActionLogout          = "logout"
	ActionPasswordChanged = "password.changed"
	ActionRolesChanged    = "roles.changed"
	ActionUserCreated     = "user.created"
	ActionUserUpdated     = "user.updated"
	ActionUserDisabled    = "user.disabled"
	ActionUserEnabled     = "user.enabled"
	ActionUserDeleted     = "user.deleted"
	ActionAPIKeyCreated   = "apikey.created"
	ActionAPIKeyRevoked   = "apikey.revoked"
	ActionRegisterFailed  = "register.failed"
	ActionBindingRemoved  = "binding.removed"
	OutcomeSuccess        = "success"
	OutcomeFailure        = "failure"
)

// Event is one security-relevant happening: who (Actor) did what
// (Action) to whom (Subject), from where, and how it ended. Events never
// carry secrets.
type Event struct {
	Time    time.Time
	Action  string
	Actor   string // user id or username of who acted; "" for anonymous, "cli" for the operator
	Subject string // user id or username acted upon
	Source  string // client IP address
	Outcome string // OutcomeSuccess or OutcomeFailure
	Detail  string // short, secret-free explanation
}

// EventSink receives events; the audit trail and the metrics implement
// it. Emit must not block for long: it runs on request paths.
type EventSink interface {
	Emit(Event)
}

// EventFunc adapts a function to EventSink.
type EventFunc func(Event)

// Emit calls f(e).
func (f EventFunc) Emit(e Event) { f(e) }

// nopSink drops events.
type nopSink struct{}

func (nopSink) Emit(Event) {}

type actorKey struct{}

type actorInfo struct{ actor, source string }

// WithActor returns a context that names who is acting (a user id, or
// "cli") and from which address, for the events emitted under it.
func WithActor(ctx context.Context, actor, source string) context.Context {
	return context.WithValue(ctx, actorKey{}, actorInfo{actor, source})
}

// actorOf returns the actor and source recorded by WithActor.
func actorOf(ctx context.Context) (actor, source string) {
	if a, ok := ctx.Value(actorKey{}).(actorInfo); ok {
		return a.actor, a.source
	}
	return "", ""
}

// emit sends an event built from ctx's actor.
func emit(ctx context.Context, sink EventSink, now time.Time, action, subject, outcome, detail string) {
	actor, source := actorOf(ctx)
	sink.Emit(Event{Time: now, Action: action, Actor: actor, Subject: subject, Source: source, Outcome: outcome, Detail: detail})
}
