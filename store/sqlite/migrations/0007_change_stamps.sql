-- 0007: change stamps (identity.ChangeStamper). Each row is a counter that
-- triggers bump in the transaction of every change it covers, whichever
-- process or connection makes it, so a reader learns that its in-memory
-- copy is out of date from one primary-key read:
--
--   users  a user inserted or deleted; any column of users changed except
--          last_login_at alone (TouchLogin runs at every login and nothing
--          cached depends on it); a role granted or taken; a SIP credential
--          inserted, replaced or deleted (ON DELETE CASCADE fires the
--          child tables' triggers too).
--   locks  a row of auth_locks inserted, updated (extended) or deleted.
--
-- A new column of users must be added to users_stamp_update's list.
CREATE TABLE change_stamps (
	name  TEXT    NOT NULL PRIMARY KEY,
	stamp INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO change_stamps (name, stamp) VALUES ('users', 0), ('locks', 0);

CREATE TRIGGER users_stamp_insert AFTER INSERT ON users
BEGIN
	UPDATE change_stamps SET stamp = stamp + 1 WHERE name = 'users';
END;

CREATE TRIGGER users_stamp_update AFTER UPDATE OF
	id, username, username_key, email, email_key, display_name, display_name_key,
	active, token_only, password_hash, created_at, updated_at
ON users
BEGIN
	UPDATE change_stamps SET stamp = stamp + 1 WHERE name = 'users';
END;

CREATE TRIGGER users_stamp_delete AFTER DELETE ON users
BEGIN
	UPDATE change_stamps SET stamp = stamp + 1 WHERE name = 'users';
END;

CREATE TRIGGER user_roles_stamp_insert AFTER INSERT ON user_roles
BEGIN
	UPDATE change_stamps SET stamp = stamp + 1 WHERE name = 'users';
END;

CREATE TRIGGER user_roles_stamp_update AFTER UPDATE ON user_roles
BEGIN
	UPDATE change_stamps SET stamp = stamp + 1 WHERE name = 'users';
END;

CREATE TRIGGER user_roles_stamp_delete AFTER DELETE ON user_roles
BEGIN
	UPDATE change_stamps SET stamp = stamp + 1 WHERE name = 'users';
END;

CREATE TRIGGER sip_credentials_stamp_insert AFTER INSERT ON sip_credentials
BEGIN
	UPDATE change_stamps SET stamp = stamp + 1 WHERE name = 'users';
END;

CREATE TRIGGER sip_credentials_stamp_update AFTER UPDATE ON sip_credentials
BEGIN
	UPDATE change_stamps SET stamp = stamp + 1 WHERE name = 'users';
END;

CREATE TRIGGER sip_credentials_stamp_delete AFTER DELETE ON sip_credentials
BEGIN
	UPDATE change_stamps SET stamp = stamp + 1 WHERE name = 'users';
END;

CREATE TRIGGER auth_locks_stamp_insert AFTER INSERT ON auth_locks
BEGIN
	UPDATE change_stamps SET stamp = stamp + 1 WHERE name = 'locks';
END;

CREATE TRIGGER auth_locks_stamp_update AFTER UPDATE ON auth_locks
BEGIN
	UPDATE change_stamps SET stamp = stamp + 1 WHERE name = 'locks';
END;

CREATE TRIGGER auth_locks_stamp_delete AFTER DELETE ON auth_locks
BEGIN
	UPDATE change_stamps SET stamp = stamp + 1 WHERE name = 'locks';
END;
