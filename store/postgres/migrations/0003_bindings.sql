-- 0003: registrar bindings (sip.Binding), one row per registered contact.
--
-- Times are BIGINT Unix milliseconds, UTC. A binding is current while
-- expires_at > now; expired rows stay until the next update of their AoR or
-- DeleteExpiredBindings removes them.
--
-- user_id is deliberately not a foreign key: bindings made with a trusted
-- issuer's token belong to "<issuer>:<sub>", who is not in users. The
-- trigger below still removes a users-core user's bindings with the user.
--
-- path is a JSON array of the Path header values in order ('[]' when none),
-- kept as text exactly as written. q is the q-value times 1000, -1 when
-- absent; reg_id is 0 when absent.
CREATE TABLE bindings (
	id          TEXT   COLLATE "C" NOT NULL,
	aor         TEXT   NOT NULL,
	user_id     TEXT   NOT NULL,
	contact     TEXT   NOT NULL,
	contact_key TEXT   NOT NULL,
	q           BIGINT NOT NULL,
	instance    TEXT   NOT NULL DEFAULT '',
	reg_id      BIGINT NOT NULL DEFAULT 0,
	call_id     TEXT   NOT NULL,
	cseq        BIGINT NOT NULL CHECK (cseq BETWEEN 0 AND 4294967295),
	path        TEXT   NOT NULL DEFAULT '[]' CHECK (json_typeof(path::json) = 'array'),
	expires_at  BIGINT NOT NULL,
	created_at  BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL,
	source      TEXT   NOT NULL DEFAULT '',
	transport   TEXT   NOT NULL DEFAULT '',
	local_addr  TEXT   NOT NULL DEFAULT '',
	user_agent  TEXT   NOT NULL DEFAULT '',
	node        TEXT   NOT NULL DEFAULT '',
	-- A taken id is an id of another AoR's binding (UpdateBindings never
	-- inserts an id of its own AoR twice).
	CONSTRAINT bindings_pkey PRIMARY KEY (id),
	-- The registrar keeps one binding per contact of an AoR (RFC 3261
	-- section 10.3 step 7); this is the safety net behind it. Its leading
	-- aor column also serves every per-AoR read and delete.
	CONSTRAINT bindings_aor_contact_key UNIQUE (aor, contact_key)
);

-- DeleteExpiredBindings and CountBindings range over expiry times.
CREATE INDEX bindings_expires_at ON bindings (expires_at);

-- The trigger finds a deleted user's bindings through this index instead
-- of scanning the table.
CREATE INDEX bindings_user ON bindings (user_id);

CREATE FUNCTION users_delete_bindings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM bindings WHERE user_id = OLD.id;
	RETURN NULL;
END
$$;

CREATE TRIGGER users_delete_bindings AFTER DELETE ON users
	FOR EACH ROW EXECUTE FUNCTION users_delete_bindings();
