-- 0010: bindings.sweep_at, a lower bound of expires_at that the expiry
-- sweep ranges over, in place of the index on expires_at (as SQLite's
-- 0010).
--
-- A re-REGISTER moves expires_at on every refresh. With an index on it,
-- each refresh wrote a new index entry and could never be a HOT update.
-- sweep_at is set to expires_at when a binding is inserted or rewritten
-- whole, and a renewal (bindplan.Renewal: the expiry moves later, nothing
-- else of note changes) changes no indexed column. Since sweep_at <=
-- expires_at always holds, every expired binding has sweep_at < now:
-- DeleteExpiredBindings finds them in the range below now, where it also
-- finds the renewed ones whose sweep_at lags, and moves those up to their
-- expires_at. The fill factor leaves room on each page for the new row
-- versions of HOT updates.
ALTER TABLE bindings ADD COLUMN sweep_at BIGINT NOT NULL DEFAULT 0;
UPDATE bindings SET sweep_at = expires_at;
ALTER TABLE bindings ADD CONSTRAINT bindings_sweep_at_check CHECK (sweep_at <= expires_at);
DROP INDEX bindings_expires_at;
CREATE INDEX bindings_sweep_at ON bindings (sweep_at);
ALTER TABLE bindings SET (fillfactor = 80);
