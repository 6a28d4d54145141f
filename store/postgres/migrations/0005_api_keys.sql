-- 0005: API keys (identity.APIKey). Only the SHA-256 of each key is kept,
-- never the key; id is the key's public id (its lookup key).
--
-- Times are BIGINT Unix milliseconds, UTC; NULL where the Go value is the
-- zero time (never expires, never used, not revoked). scopes is the
-- space-separated, sorted scope list (scopes never contain spaces).
--
-- seq stands in for SQLite's rowid: it grows in insert order and breaks the
-- tie between keys created in the same millisecond (the later one lists
-- first).
CREATE TABLE api_keys (
	id           TEXT   NOT NULL,
	user_id      TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	name         TEXT   NOT NULL CHECK (name <> ''),
	hash         BYTEA  NOT NULL,
	scopes       TEXT   NOT NULL,
	created_at   BIGINT NOT NULL,
	expires_at   BIGINT,
	last_used_at BIGINT,
	revoked_at   BIGINT,
	seq          BIGINT NOT NULL GENERATED ALWAYS AS IDENTITY,
	CONSTRAINT api_keys_pkey PRIMARY KEY (id)
);

-- ListAPIKeys (newest first) and the cascade from a deleted user find a
-- user's keys through this index.
CREATE INDEX api_keys_user ON api_keys (user_id, created_at, seq);

-- A name is unique among a user's unrevoked keys only: revoking "ci" and
-- creating a new "ci" is how a key is rotated, while the revoked row stays
-- listed for the record.
CREATE UNIQUE INDEX api_keys_user_name ON api_keys (user_id, name) WHERE revoked_at IS NULL;
