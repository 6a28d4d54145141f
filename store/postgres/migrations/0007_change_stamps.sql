-- 0007: change stamps (identity.ChangeStamper). Each row is a counter that
-- triggers bump in the transaction of every change it covers, whichever
-- node or connection makes it, so a reader learns that its in-memory copy
-- is out of date from one primary-key read:
--
--   users  a user inserted or deleted; any column of users changed except
--          last_login_at alone (TouchLogin runs at every login and nothing
--          cached depends on it); a role granted or taken; a SIP credential
--          inserted, replaced or deleted (ON DELETE CASCADE fires the
--          child tables' triggers too).
--   locks  a row of auth_locks inserted, updated (extended) or deleted.
--
-- A new column of users must be added to users_stamp's UPDATE OF list.
--
-- The triggers fire for each row, but bump a stamp at most once per
-- transaction: a transaction-local setting remembers the bump. Updating one
-- row many times in one transaction is quadratic in PostgreSQL (every
-- update adds a row version the next one has to walk past), and a large
-- CreateUsers would fire thousands of times. The row lock the bump takes
-- is held to the commit, so a reader never sees the new stamp without the
-- change, nor the change with the old stamp.
CREATE TABLE change_stamps (
	name  TEXT   NOT NULL PRIMARY KEY,
	stamp BIGINT NOT NULL
);

INSERT INTO change_stamps (name, stamp) VALUES ('users', 0), ('locks', 0);

CREATE FUNCTION bump_change_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	bumped text := 'users_core.stamped_' || TG_ARGV[0];
BEGIN
	IF coalesce(current_setting(bumped, true), '') <> 'on' THEN
		UPDATE change_stamps SET stamp = stamp + 1 WHERE name = TG_ARGV[0];
		-- is_local: the setting ends with the transaction (or with the
		-- savepoint it was made in, if that is rolled back).
		PERFORM set_config(bumped, 'on', true);
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER users_stamp AFTER INSERT OR DELETE OR UPDATE OF
	id, username, username_key, email, email_key, display_name, display_name_key,
	active, token_only, password_hash, created_at, updated_at
ON users FOR EACH ROW EXECUTE FUNCTION bump_change_stamp('users');

CREATE TRIGGER user_roles_stamp AFTER INSERT OR UPDATE OR DELETE ON user_roles
	FOR EACH ROW EXECUTE FUNCTION bump_change_stamp('users');

CREATE TRIGGER sip_credentials_stamp AFTER INSERT OR UPDATE OR DELETE ON sip_credentials
	FOR EACH ROW EXECUTE FUNCTION bump_change_stamp('users');

CREATE TRIGGER auth_locks_stamp AFTER INSERT OR UPDATE OR DELETE ON auth_locks
	FOR EACH ROW EXECUTE FUNCTION bump_change_stamp('locks');
