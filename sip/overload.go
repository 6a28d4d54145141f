package sip

import (
	"context"
	"errors"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/rvoip/users-core/identity"
)

// DefaultRegisterTimeout is how long one REGISTER may wait, in all, for the
// regulator, the credential or user lookup, the token keys and the binding
// update before it is answered 503 (Config.RegisterTimeout).
//
// Why 2 s. A healthy store answers in milliseconds, and a full in-flight
// queue (MaxInFlight, 4096 by default) drains through the single SQLite
// writer in well under a second, so 2 s is only exceeded when the store is
// stalled, not busy. Meanwhile a UDP client has retransmitted its REGISTER
// four times (RFC 3261 Timer E: 0.5, 1, 2 s...; the transaction layer
// absorbs them) and gives up after 32 s (Timer F); a proxy in front gives
// up on us after its own final-response timer, often a few seconds, and
// then answers 408 itself and may mark this node dead. A prompt 503 with
// Retry-After tells the client to back off or fail over to another node
// (RFC 3261 section 21.5.4, RFC 3263 section 4.3) instead of waiting for a
// 500 that says nothing about retrying.
const DefaultRegisterTimeout = 2 * time.Second

// overloadRetryAfter is the Retry-After, in seconds, of every 503 the
// registrar sends: the in-flight bound, the token keys and a slow store.
const overloadRetryAfter = "5"

// overloaded reports whether err, from a store or service called under
// ctx, means "too slow or too busy right now" rather than "broken": the
// REGISTER's deadline passed (whatever error the driver made of it: an
// interrupted SQLite statement is not a context error), or a service said
// it is unavailable (identity.CodeUnavailable).
func overloaded(ctx context.Context, err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		identity.ErrorCode(err) == identity.CodeUnavailable
}

// storeFailure answers a REGISTER whose op (a lookup or the binding
// update) failed with err: 503 with Retry-After when the store was
// overloaded, else 500. Only the 500 is logged on its own: under overload
// every REGISTER would log one, and the outcome line already names the
// reason.
func (s *Server) storeFailure(ctx context.Context, req *sip.Request, err error, out *outcome, op string) *sip.Response {
	if overloaded(ctx, err) {
		out.reason = op + " overloaded"
		res := sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
		res.AppendHeader(sip.NewHeader("Retry-After", overloadRetryAfter))
		return res
	}
	out.reason = op + " failed"
	s.log.Error().Err(err).Str("source", req.Source()).Msg(op)
	return sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil)
}
