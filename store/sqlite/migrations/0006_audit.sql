-- 0006: the audit trail of security events.
--
-- One row per identity.Event, appended in batches by the Auditor and never
-- updated; PruneAudit deletes rows older than the retention. at is Unix
-- milliseconds, UTC. id (the rowid) grows in write order: ListAudit pages
-- newest first by id, and its cursor is an id.
CREATE TABLE audit_events (
	id      INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
	at      INTEGER NOT NULL,
	action  TEXT    NOT NULL,
	actor   TEXT    NOT NULL DEFAULT '',
	subject TEXT    NOT NULL DEFAULT '',
	source  TEXT    NOT NULL DEFAULT '',
	outcome TEXT    NOT NULL DEFAULT '',
	detail  TEXT    NOT NULL DEFAULT ''
) STRICT;

-- Time ranges (since, until) and pruning.
CREATE INDEX audit_events_at ON audit_events (at);
-- The filters an investigation starts from. Every index ends with the
-- rowid, so "WHERE action = ? ORDER BY id DESC" walks one index range in
-- page order, without sorting.
CREATE INDEX audit_events_action ON audit_events (action);
CREATE INDEX audit_events_subject ON audit_events (subject);
CREATE INDEX audit_events_actor ON audit_events (actor);
CREATE INDEX audit_events_source ON audit_events (source);
