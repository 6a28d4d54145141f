-- 0010: bindings.sweep_at, a lower bound of expires_at that the expiry
-- sweep ranges over, in place of the index on expires_at.
--
-- A re-REGISTER moves expires_at on every refresh, and an index on it made
-- each refresh rewrite one index entry: one more page in the WAL per
-- registration, about a sixth of the store's cost of a refresh. sweep_at is
-- set to expires_at when a binding is inserted or rewritten whole, and a
-- renewal (bindplan.Renewal: the expiry moves later, nothing else of note
-- changes) leaves it alone, so the index on it is not touched. Since
-- sweep_at <= expires_at always holds, every expired binding has
-- sweep_at < now: DeleteExpiredBindings finds them in the range below now,
-- where it also finds the renewed ones whose sweep_at lags, and moves
-- those up to their expires_at.
ALTER TABLE bindings ADD COLUMN sweep_at INTEGER NOT NULL DEFAULT 0 CHECK (sweep_at <= expires_at);
UPDATE bindings SET sweep_at = expires_at;
DROP INDEX bindings_expires_at;
CREATE INDEX bindings_sweep_at ON bindings (sweep_at);
