package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/sip"
	"github.com/rvoip/users-core/store"
)

// newAuditor returns the audit trail's writer over st and the sink the
// services emit to: each event is logged, then queued for the store. The
// log line is the copy that survives when the Auditor drops an event (a
// full queue) or loses its last batch (a crash).
func newAuditor(st store.Store, logger zerolog.Logger) (*identity.Auditor, identity.EventSink) {
	log := logger.With().Str("component", "audit").Logger()
	a := identity.NewAuditor(identity.AuditorConfig{
		Store: st,
		OnError: func(err error, lost int) {
			log.Error().Err(err).Int("lost", lost).Msg("writing audit events failed")
		},
	})
	sink := identity.EventFunc(func(e identity.Event) {
		ev := log.Info()
		if e.Outcome == identity.OutcomeFailure {
			ev = log.Warn()
		}
		ev.Str("action", e.Action).Str("actor", e.Actor).Str("subject", e.Subject).Str("source", e.Source).
			Str("outcome", e.Outcome).Str("detail", e.Detail).Msg("security event")
		a.Emit(e)
	})
	return a, sink
}

// auditRegisterFailures returns the sip.Config.Outcomes observer that
// records failed REGISTERs in the audit trail: refused credentials
// (wrong password, unknown user, bad token, locked) and 403s (credentials
// for another AoR, missing scope). Plain challenges are not failures. The
// registrar already logs every REGISTER, so these skip the log line.
func auditRegisterFailures(a *identity.Auditor) func(sip.RegisterOutcome) {
	return func(o sip.RegisterOutcome) {
		if !o.AuthFailed && o.Status != 403 {
			return
		}
		source := o.Source
		if host, _, err := net.SplitHostPort(o.Source); err == nil {
			source = host
		}
		a.Emit(identity.Event{
			Time:    o.Time,
			Action:  identity.ActionRegisterFailed,
			Actor:   o.User,
			Subject: o.AoR,
			Source:  source,
			Outcome: identity.OutcomeFailure,
			Detail:  fmt.Sprintf("%d %s (%s %s from %s)", o.Status, o.Reason, o.Scheme, o.Transport, o.Source),
		})
	}
}

// maintainAudit deletes the audit events older than the retention (none
// when it is 0) and warns when events were dropped since the last call.
func (a *App) maintainAudit(ctx context.Context) {
	if days := a.Config.UsersCore.Audit.RetentionDays; days > 0 {
		n, err := a.Store.PruneAudit(ctx, time.Now().AddDate(0, 0, -days))
		if err != nil && ctx.Err() == nil {
			a.Logger.Warn().Err(err).Msg("pruning audit events")
		} else if n > 0 {
			a.Logger.Info().Int("deleted", n).Int("retention_days", days).Msg("pruned audit events")
		}
	}
	if a.Audit == nil {
		return
	}
	if d := a.Audit.Dropped(); d > a.auditDropped {
		a.Logger.Warn().Uint64("dropped", d-a.auditDropped).Uint64("total", d).
			Msg("audit events were dropped (queue full or write failed); the log has them")
		a.auditDropped = d
	}
}

// closeAudit writes the queued audit events, waiting at most 5 seconds.
func (a *App) closeAudit() error {
	if a.Audit == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Audit.Close(ctx); err != nil {
		return fmt.Errorf("audit: writing the last events: %w", err)
	}
	return nil
}

// sipLockoutDetail begins the detail of a lockout event set by failed
// SIP REGISTERs; the metrics tell the protocols apart by it.
const sipLockoutDetail = "too many failed SIP REGISTERs"

// auditLockouts returns r emitting an ActionLockout event to events (the
// audit trail, its log line and the metrics) whenever a failed REGISTER
// sets a lock, as identity.Tokens.Login does for HTTP logins. Actor and
// subject are the Digest username, source the client address; the detail
// says whether the username, the address or both are now locked.
func auditLockouts(r sip.Regulator, events identity.EventSink) sip.Regulator {
	return lockoutRegulator{Regulator: r, events: events}
}

type lockoutRegulator struct {
	sip.Regulator
	events identity.EventSink
}

// Failure records the failure and emits the event of a newly set lock.
func (r lockoutRegulator) Failure(ctx context.Context, username, addr string) (bool, error) {
	locked, err := r.Regulator.Failure(ctx, username, addr)
	if locked {
		r.events.Emit(identity.Event{
			Time: time.Now().UTC(), Action: identity.ActionLockout,
			Actor: username, Subject: username, Source: addr, Outcome: identity.OutcomeSuccess,
			Detail: sipLockoutDetail + ": " + r.locks(ctx, username, addr),
		})
	}
	return locked, err
}

// locks names the locks in force for username and addr. Failure reports
// only that it set one; asking costs two reads, once per lock.
func (r lockoutRegulator) locks(ctx context.Context, username, addr string) string {
	var what []string
	if username != "" && identity.ErrorCode(r.Check(ctx, username, "")) == identity.CodeAccountLocked {
		what = append(what, "user locked")
	}
	if addr != "" && identity.ErrorCode(r.Check(ctx, "", addr)) == identity.CodeAccountLocked {
		what = append(what, "address banned")
	}
	if len(what) == 0 {
		return "user or address locked"
	}
	return strings.Join(what, ", ")
}
