package sip

import (
	"context"
	"time"

	"github.com/emiago/sipgo/sip"
)

// NonceCountStore keeps the Digest nonce counts of every node on one
// database, so that an Authorization captured at one node cannot be
// replayed at another (RFC 7616 section 3.4). Nonces are stateless and
// verify on every node holding the shared secret (NonceKeeper); this is
// the one piece of Digest state the nodes must share. Each node still
// checks its own ReplayGuard first, which refuses a replay to the same node
// without a database round trip. store/postgres implements it (and
// store/sqlite, for the conformance suite: one process per SQLite file has
// no other node to share with). Implementations must pass store/storetest
// and be safe for concurrent use, on one node and across nodes.
type NonceCountStore interface {
	// UseNonceCount returns true, and records nc, when nc is higher than
	// every count recorded for nonce by any node; false for a repeated or
	// lower nc, and for nc 0 (counts start at 1). The check and the record
	// are one atomic step: of concurrent calls with the same nonce and nc,
	// on any nodes, exactly one gets true. expires is when the nonce stops
	// being valid; a record is kept at least until then (the later expiry
	// wins when calls for one nonce disagree). The caller has already
	// checked that the nonce is authentic and unexpired. An error means
	// the count could not be checked, never that it was refused.
	UseNonceCount(ctx context.Context, nonce string, nc uint32, expires time.Time) (bool, error)
	// DeleteExpiredNonceCounts deletes the records whose expiry is before
	// before and returns how many went. The maintenance loop calls it.
	DeleteExpiredNonceCounts(ctx context.Context, before time.Time) (int, error)
}

// useSharedNonceCount checks nc against the other nodes' counts when a
// NonceCountStore is configured; it returns the answer to send when the
// REGISTER must not go on, nil when it may. Call it after the local
// ReplayGuard accepted the count, so a replay to this node costs no
// database write.
func (s *Server) useSharedNonceCount(ctx context.Context, req *sip.Request, realm string, c *Credentials, out *outcome) *sip.Response {
	if s.cfg.NonceCounts == nil {
		return nil
	}
	fresh, err := s.cfg.NonceCounts.UseNonceCount(ctx, c.Nonce, c.NC, s.nonceExpiry(c.Nonce))
	if err != nil {
		if overloaded(ctx, err) {
			return s.storeFailure(ctx, req, err, out, "nonce count")
		}
		// 503, not storeFailure's 500: the credentials were right and only
		// the replay check could not run, so the client should come back
		// (or fail over to another node, RFC 3263 section 4.3) rather than
		// give up. Accepting without the check would reopen the replay.
		out.reason = "nonce count failed"
		s.log.Error().Err(err).Str("source", req.Source()).Msg("nonce count")
		res := sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
		res.AppendHeader(sip.NewHeader("Retry-After", overloadRetryAfter))
		return res
	}
	if !fresh {
		out.reason = "replayed nonce count (shared check)"
		return s.challenge(req, realm, false, false)
	}
	return nil
}
