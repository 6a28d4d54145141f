-- 0003: registrar bindings (sip.Binding), one row per registered contact.
--
-- Times are INTEGER Unix milliseconds, UTC. A binding is current while
-- expires_at > now; expired rows stay until the next update of their AoR or
-- DeleteExpiredBindings removes them.
--
-- user_id is deliberately not a foreign key: bindings made with a trusted
-- issuer's token belong to "<issuer>:<sub>", who is not in users. The
-- trigger below still removes a users-core user's bindings with the user.
--
-- path is a JSON array of the Path header values in order ('[]' when none).
-- q is the q-value times 1000, -1 when absent; reg_id is 0 when absent.
CREATE TABLE bindings (
	id          TEXT    NOT NULL PRIMARY KEY,
	aor         TEXT    NOT NULL,
	user_id     TEXT    NOT NULL,
	contact     TEXT    NOT NULL,
	contact_key TEXT    NOT NULL,
	q           INTEGER NOT NULL,
	instance    TEXT    NOT NULL DEFAULT '',
	reg_id      INTEGER NOT NULL DEFAULT 0,
	call_id     TEXT    NOT NULL,
	cseq        INTEGER NOT NULL CHECK (cseq BETWEEN 0 AND 4294967295),
	path        TEXT    NOT NULL DEFAULT '[]' CHECK (json_type(path) = 'array'),
	expires_at  INTEGER NOT NULL,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL,
	source      TEXT    NOT NULL DEFAULT '',
	transport   TEXT    NOT NULL DEFAULT '',
	local_addr  TEXT    NOT NULL DEFAULT '',
	user_agent  TEXT    NOT NULL DEFAULT '',
	node        TEXT    NOT NULL DEFAULT '',
	-- The registrar keeps one binding per contact of an AoR (RFC 3261
	-- section 10.3 step 7); this is the safety net behind it. Its leading
	-- aor column also serves every per-AoR read and delete.
	UNIQUE (aor, contact_key)
) STRICT;

-- DeleteExpiredBindings and CountBindings range over expiry times.
CREATE INDEX bindings_expires_at ON bindings (expires_at);

-- The trigger finds a deleted user's bindings through this index instead
-- of scanning the table.
CREATE INDEX bindings_user ON bindings (user_id);

CREATE TRIGGER users_delete_bindings AFTER DELETE ON users
BEGIN
	DELETE FROM bindings WHERE user_id = OLD.id;
END;
