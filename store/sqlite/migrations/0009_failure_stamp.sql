-- 0009: the change stamp "failures" (identity.StampFailures), bumped like
-- 0007's by triggers in the transaction of every change it covers, whichever
-- process or connection makes it:
--
--   failures  a row of auth_failures of kind 'user' inserted or deleted
--             (RecordFailure, ClearFailures, PruneAttempts).
--
-- A Regulator keeps the set of users with failures in memory and reloads it
-- when this stamp changes, so that a successful login or REGISTER asks the
-- database to clear failures only for a user that has some. Rows of kind
-- 'addr' leave the stamp alone: successes never clear them, and under a
-- guessing attack they are as many as the users' rows.
INSERT INTO change_stamps (name, stamp) VALUES ('failures', 0);

CREATE TRIGGER auth_failures_stamp_insert AFTER INSERT ON auth_failures
WHEN NEW.kind = 'user'
BEGIN
	UPDATE change_stamps SET stamp = stamp + 1 WHERE name = 'failures';
END;

CREATE TRIGGER auth_failures_stamp_delete AFTER DELETE ON auth_failures
WHEN OLD.kind = 'user'
BEGIN
	UPDATE change_stamps SET stamp = stamp + 1 WHERE name = 'failures';
END;
