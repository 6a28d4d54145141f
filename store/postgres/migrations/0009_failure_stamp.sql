-- 0009: the change stamp "failures" (identity.StampFailures), bumped like
-- 0007's by triggers in the transaction of every change it covers, whichever
-- node or connection makes it:
--
--   failures  a row of auth_failures of kind 'user' inserted or deleted
--             (RecordFailure, ClearFailures, PruneAttempts).
--
-- A Regulator keeps the set of users with failures in memory and reloads it
-- when this stamp changes, so that a successful login or REGISTER asks the
-- database to clear failures only for a user that has some. Rows of kind
-- 'addr' leave the stamp alone: successes never clear them, and under a
-- guessing attack they are as many as the users' rows.
--
-- Unlike 0007's stamps, this one is 64 counters, rows 'failures.0' to
-- 'failures.63' of change_stamps chosen by a hash of the user, and its value
-- is their sum (ChangeStamp adds them up). The row lock a bump takes is
-- held to the commit: with one counter, every failed login or REGISTER of
-- every node would wait for the commit of the one before it, and a guessing
-- attack spread over many users would queue on that row, holding
-- connections the registrar needs. (Failures of one user are serialized
-- anyway, by RecordFailure's advisory lock.) The sum grows with every
-- committed bump, so it changes with every change, as a stamp must. SQLite
-- has one writer and keeps a single counter.
INSERT INTO change_stamps (name, stamp) SELECT 'failures.' || s, 0 FROM generate_series(0, 63) AS s;

-- Bumps the counter of the row's user at most once per transaction and
-- counter, as bump_change_stamp does (a PruneAttempts deleting thousands of
-- rows updates each counter once).
CREATE FUNCTION bump_failure_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	counter text;
	bumped  text;
BEGIN
	IF TG_OP = 'DELETE' THEN
		counter := 'failures.' || (hashtext(OLD.value) & 63);
	ELSE
		counter := 'failures.' || (hashtext(NEW.value) & 63);
	END IF;
	bumped := 'users_core.stamped_' || replace(counter, '.', '_');
	IF coalesce(current_setting(bumped, true), '') <> 'on' THEN
		UPDATE change_stamps SET stamp = stamp + 1 WHERE name = counter;
		PERFORM set_config(bumped, 'on', true);
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER auth_failures_stamp_insert AFTER INSERT ON auth_failures
	FOR EACH ROW WHEN (NEW.kind = 'user') EXECUTE FUNCTION bump_failure_stamp();

CREATE TRIGGER auth_failures_stamp_delete AFTER DELETE ON auth_failures
	FOR EACH ROW WHEN (OLD.kind = 'user') EXECUTE FUNCTION bump_failure_stamp();
