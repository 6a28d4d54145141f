-- 0005: API keys (identity.APIKey). Only the SHA-256 of each key is kept,
-- never the key; id is the key's public id (its lookup key).
--
-- Times are INTEGER Unix milliseconds, UTC; NULL where the Go value is the
-- zero time (never expires, never used, not revoked). scopes is the
-- space-separated, sorted scope list (scopes never contain spaces).
CREATE TABLE api_keys (
	id           TEXT    NOT NULL PRIMARY KEY,
	user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	name         TEXT    NOT NULL CHECK (name <> ''),
	hash         BLOB    NOT NULL,
	scopes       TEXT    NOT NULL,
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER,
	last_used_at INTEGER,
	revoked_at   INTEGER
) STRICT;

-- ListAPIKeys (newest first) and the cascade from a deleted user find a
-- user's keys through this index.
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);

-- A name is unique among a user's unrevoked keys only: revoking "ci" and
-- creating a new "ci" is how a key is rotated, while the revoked row stays
-- listed for the record.
CREATE UNIQUE INDEX api_keys_user_name ON api_keys (user_id, name) WHERE revoked_at IS NULL;
