package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/rvoip/users-core/identity"
)

// AuditReader lists the audit trail; the store satisfies it.
type AuditReader interface {
	ListAudit(ctx context.Context, f identity.AuditFilter) (identity.AuditPage, error)
}

type auditJSON struct {
	ID      int64     `json:"id"`
	Time    time.Time `json:"time"`
	Action  string    `json:"action"`
	Actor   string    `json:"actor"`
	Subject string    `json:"subject"`
	Source  string    `json:"source"`
	Outcome string    `json:"outcome"`
	Detail  string    `json:"detail"`
}

// listAudit: GET /audit?action=&actor=&subject=&source=&outcome=&since=&until=&cursor=&limit=
// (admin with audit:read), newest first.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, p *principal) {
	if !p.isAdmin() || !p.can("audit:read") {
		forbidden(w, "reading the audit trail needs an admin with audit:read")
		return
	}
	q := r.URL.Query()
	f := identity.AuditFilter{Action: q.Get("action"), Actor: q.Get("actor"), Subject: q.Get("subject"),
		Source: q.Get("source"), Outcome: q.Get("outcome"), After: q.Get("cursor")}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				writeError(w, http.StatusBadRequest, "BAD_REQUEST", name+" must be an RFC 3339 time")
				return
			}
			*dst = t
		}
	}
	var ok bool
	if f.Limit, ok = pageLimit(w, q.Get("limit")); !ok {
		return
	}
	page, err := s.cfg.Audit.ListAudit(r.Context(), f)
	if err != nil {
		s.failField(w, r, err)
		return
	}
	out := make([]auditJSON, len(page.Records))
	for i, rec := range page.Records {
		e := rec.Event
		out[i] = auditJSON{ID: rec.ID, Time: e.Time, Action: e.Action, Actor: e.Actor, Subject: e.Subject,
			Source: e.Source, Outcome: e.Outcome, Detail: e.Detail}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out, "next_cursor": page.Next})
}
