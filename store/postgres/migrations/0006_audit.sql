-- 0006: the audit trail of security events.
--
-- One row per identity.Event, appended in batches by the Auditor and never
-- updated; PruneAudit deletes rows older than the retention. at is Unix
-- milliseconds, UTC. id grows in commit order (AppendAudit serializes
-- appends with an advisory lock, so no id becomes visible before a smaller
-- one): ListAudit pages newest first by id, and its cursor is an id.
CREATE TABLE audit_events (
	id      BIGINT NOT NULL GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at      BIGINT NOT NULL,
	action  TEXT   NOT NULL,
	actor   TEXT   NOT NULL DEFAULT '',
	subject TEXT   NOT NULL DEFAULT '',
	source  TEXT   NOT NULL DEFAULT '',
	outcome TEXT   NOT NULL DEFAULT '',
	detail  TEXT   NOT NULL DEFAULT ''
);

-- Time ranges (since, until) and pruning.
CREATE INDEX audit_events_at ON audit_events (at);
-- The filters an investigation starts from. Every index ends with id, so
-- "WHERE action = $1 ORDER BY id DESC" walks one index range in page
-- order, without sorting (SQLite's indexes end with the rowid implicitly).
CREATE INDEX audit_events_action ON audit_events (action, id);
CREATE INDEX audit_events_subject ON audit_events (subject, id);
CREATE INDEX audit_events_actor ON audit_events (actor, id);
CREATE INDEX audit_events_source ON audit_events (source, id);
