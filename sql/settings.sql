-- filegc: settings. The defaults are filegc's (filegc.setting_defaults),
-- the values the operator changed are the operator's
-- (filegc.setting_overrides, which pg_dump saves); the view filegc.settings
-- shows and changes both, and every value is checked against its range
-- however it is written.

-- Every setting: its default, its kind (which validate_setting checks) and
-- what it does. The operator's values are in filegc.setting_overrides.
INSERT INTO filegc.setting_defaults (name, default_value, kind, description) VALUES
    ('unreferenced_delay', '10 minutes', 'interval',
     'How long a file that lost its last reference waits before the sweeper may delete it'),
    ('orphan_min_age', '1 hour', 'interval',
     'A file on disk that no row references is an eligible orphan only when both its first sighting and its mtime are older than this'),
    ('trash_retention', '24 hours', 'interval',
     'How long a deleted file stays in .filegc-trash/ on the volume, restorable, before it is unlinked'),
    ('max_delete_fraction', '0.25', 'fraction',
     'Circuit breaker: a cleanup that would schedule more than this fraction of the files in the latest scan is refused unless forced'),
    ('alert_warning_pct', '80', 'percent', 'Volume use (percent) at which the alert level becomes warning'),
    ('alert_critical_pct', '90', 'percent', 'Volume use (percent) at which the alert level becomes critical'),
    ('alert_emergency_pct', '95', 'percent', 'Volume use (percent) at which the alert level becomes emergency'),
    ('lease', '5 minutes', 'interval',
     'How long a sweeper owns a claimed tombstone; after that another sweeper may claim it again'),
    ('max_attempts', '5', 'integer',
     'A tombstone whose deletion failed this many times becomes failed and is left for the operator'),
    ('managed_patterns', '*.png,*.jpg,*.jpeg,*.webp', 'patterns',
     'Comma-separated file-name patterns (* and ?, case-insensitive) of the files filegc manages; orphan and age cleanups consider only these'),
    -- The maintenance policies `filegc run` applies.
    ('orphan_cleanup_interval', '1 day', 'interval',
     'How often filegc run cleans up the eligible orphans (filegc.cleanup_orphans without force, so the circuit breaker applies), and runs the retention cleanup when retention_days is set; 0 turns both off'),
    ('retention_days', 'off', 'integer_or_off',
     'filegc run deletes managed images older than this many days (filegc.cleanup_older_than without force), as often as orphan_cleanup_interval; off keeps them'),
    ('retention_include_referenced', 'false', 'boolean',
     'Whether the retention cleanup also deletes old images that rows still reference (they then show in filegc.missing)'),
    ('maintenance_window', 'any', 'window',
     'When filegc run may start the orphan and retention cleanups: any, or HH:MM-HH:MM in UTC such as 02:00-05:00 (22:00-04:00 spans midnight)'),
    ('alert_webhook_url', 'off', 'url',
     'An http:// or https:// URL that filegc run POSTs {"level","previous_level","used_pct","volume","host"} to when the alert level rises or falls; off sends nothing'),
    ('alert_webhook_format', 'auto', 'webhook_format',
     'The body the alert webhook receives: slack ({"text"}), discord ({"content"}), json (the document above), or auto, which picks slack or discord from a Slack or Discord webhook URL and json otherwise'),
    ('emergency_cleanup', 'true', 'boolean',
     'When the alert level reaches emergency, filegc run empties the trash, then deletes the eligible orphans (never a referenced file)');

-- Every setting has a range that keeps each computation that uses it valid
-- (a date a delay away, a lease, an attempt count); a value outside it is
-- refused with the range.
CREATE FUNCTION filegc.validate_setting(setting_name text, proposed text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    setting_kind text;
    as_number numeric;
    as_interval interval;
    lowest text := CASE setting_name WHEN 'lease' THEN '1 second' ELSE '0' END;
    highest text := CASE setting_name WHEN 'lease' THEN '1 day' ELSE '10 years' END;
BEGIN
    SELECT kind INTO setting_kind FROM filegc.setting_defaults WHERE name = setting_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'filegc: unknown setting "%"', setting_name
            USING HINT = 'SELECT name, value, description FROM filegc.settings lists them.';
    END IF;
    IF proposed IS NULL THEN
        RAISE EXCEPTION 'filegc: setting "%" cannot be NULL', setting_name
            USING HINT = format('DELETE FROM filegc.settings WHERE name = %L resets it to its default.', setting_name);
    END IF;
    CASE setting_kind
    WHEN 'interval' THEN
        BEGIN
            as_interval := proposed::interval;
        EXCEPTION WHEN others THEN
            RAISE EXCEPTION 'filegc: setting "%" takes an interval from % to %, not "%"', setting_name, lowest, highest, proposed
                USING HINT = 'For example ''10 minutes'', ''1 hour'' or ''0''.';
        END;
        IF as_interval < lowest::interval OR as_interval > highest::interval THEN
            RAISE EXCEPTION 'filegc: setting "%" takes an interval from % to %, not "%"', setting_name, lowest, highest, proposed;
        END IF;
    WHEN 'fraction', 'percent', 'integer' THEN
        BEGIN
            as_number := proposed::numeric;
        EXCEPTION WHEN others THEN
            RAISE EXCEPTION 'filegc: setting "%" takes a number, not "%"', setting_name, proposed;
        END;
        IF setting_kind = 'fraction' AND NOT (as_number > 0 AND as_number <= 1) THEN
            RAISE EXCEPTION 'filegc: setting "%" takes a fraction from just above 0 to 1, not %', setting_name, proposed
                USING HINT = 'For example 0.25 lets one cleanup schedule at most a quarter of the volume.';
        ELSIF setting_kind = 'percent' AND NOT (as_number >= 0 AND as_number <= 100) THEN
            RAISE EXCEPTION 'filegc: setting "%" takes a percentage from 0 to 100, not %', setting_name, proposed;
        ELSIF setting_kind = 'integer' AND NOT (as_number >= 1 AND as_number <= 1000 AND as_number = trunc(as_number)) THEN
            RAISE EXCEPTION 'filegc: setting "%" takes a whole number from 1 to 1000, not %', setting_name, proposed;
        END IF;
    WHEN 'patterns' THEN
        IF proposed !~ '^\s*[^,\s/]+(\s*,\s*[^,\s/]+)*\s*$' THEN
            RAISE EXCEPTION 'filegc: setting "%" takes comma-separated file-name patterns, not "%"', setting_name, proposed
                USING HINT = 'For example ''*.png,*.jpg,*.jpeg,*.webp''.';
        END IF;
    WHEN 'boolean' THEN
        IF lower(trim(proposed)) NOT IN ('true', 'false', 'on', 'off') THEN
            RAISE EXCEPTION 'filegc: setting "%" takes true or false, not "%"', setting_name, proposed
                USING HINT = 'on and off are accepted too.';
        END IF;
    WHEN 'integer_or_off' THEN
        IF lower(trim(proposed)) <> 'off'
           AND NOT (trim(proposed) ~ '^0*[1-9][0-9]{0,4}$' AND trim(proposed)::integer <= 36500) THEN
            RAISE EXCEPTION 'filegc: setting "%" takes a whole number of days from 1 to 36500, or off, not "%"', setting_name, proposed
                USING HINT = 'For example ''90'', or ''off'' to turn it off.';
        END IF;
    WHEN 'window' THEN
        IF lower(trim(proposed)) <> 'any' THEN
            IF trim(proposed) !~ '^([01][0-9]|2[0-3]):[0-5][0-9]\s*-\s*([01][0-9]|2[0-3]):[0-5][0-9]$' THEN
                RAISE EXCEPTION 'filegc: setting "%" takes any or a time range HH:MM-HH:MM in UTC, not "%"', setting_name, proposed
                    USING HINT = 'For example ''02:00-05:00'', or ''22:00-04:00'' across midnight.';
            END IF;
            IF trim(split_part(proposed, '-', 1)) = trim(split_part(proposed, '-', 2)) THEN
                RAISE EXCEPTION 'filegc: setting "%" is an empty window: "%" ends when it starts', setting_name, proposed
                    USING HINT = 'Use ''any'' to allow every time of day.';
            END IF;
        END IF;
    WHEN 'webhook_format' THEN
        IF lower(trim(proposed)) NOT IN ('auto', 'json', 'slack', 'discord') THEN
            RAISE EXCEPTION 'filegc: setting "%" takes auto, json, slack or discord, not "%"', setting_name, proposed
                USING HINT = 'auto sends Slack''s and Discord''s webhooks the bodies they accept, and JSON to any other URL.';
        END IF;
    WHEN 'url' THEN
        IF lower(trim(proposed)) <> 'off' AND trim(proposed) !~* '^https?://[^/?#\s]+([/?#]\S*)?$' THEN
            RAISE EXCEPTION 'filegc: setting "%" takes an http:// or https:// URL, or off, not "%"', setting_name, proposed
                USING HINT = 'For example ''https://hooks.example.com/filegc''.';
        END IF;
    ELSE
        NULL;
    END CASE;
END
$$;
COMMENT ON FUNCTION filegc.validate_setting(text, text) IS 'Raises an error when a value is not acceptable for a setting';

CREATE FUNCTION filegc.check_setting_override() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM filegc.validate_setting(NEW.name, NEW.value);
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION filegc.check_setting_override() IS
    'Internal: refuses a setting override outside the setting''s range, whichever way it is written';

-- Enabled ALWAYS, so that replica mode (a restore, logical replication)
-- cannot store a value past the check either.
CREATE TRIGGER check_setting_override BEFORE INSERT OR UPDATE ON filegc.setting_overrides
    FOR EACH ROW EXECUTE FUNCTION filegc.check_setting_override();
ALTER TABLE filegc.setting_overrides ENABLE ALWAYS TRIGGER check_setting_override;

-- A value stored past the checks (by a superuser with filegc's triggers
-- disabled, or from a dump of an older version that took more) is read as
-- the default, with a warning, so that no report, cleanup or sweep fails on
-- it. The application's writes read no setting at all.
CREATE FUNCTION filegc.setting(setting_name text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    stored text;
    fallback text;
BEGIN
    SELECT o.value, d.default_value INTO stored, fallback
      FROM filegc.setting_defaults d
      LEFT JOIN filegc.setting_overrides o USING (name)
     WHERE d.name = setting_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'filegc: unknown setting "%"', setting_name
            USING HINT = 'SELECT name, value, description FROM filegc.settings lists them.';
    END IF;
    IF stored IS NULL THEN
        RETURN fallback;
    END IF;
    BEGIN
        PERFORM filegc.validate_setting(setting_name, stored);
    EXCEPTION WHEN others THEN
        RAISE WARNING 'filegc: setting "%" holds "%", which it does not take; its default "%" applies', setting_name, stored, fallback
            USING HINT = format('DELETE FROM filegc.settings WHERE name = %L, or set a value it takes.', setting_name);
        RETURN fallback;
    END;
    RETURN stored;
END
$$;
COMMENT ON FUNCTION filegc.setting(text) IS 'The current value of a filegc setting, as text';

-- The managed_patterns setting as one case-insensitive regular expression
-- for a whole relative path: each pattern must match its last segment. A
-- pattern that starts with * becomes a plain suffix match, which is much
-- cheaper than anchoring at the start of the name.
CREATE FUNCTION filegc.managed_regex() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT '(' || string_agg(
               CASE WHEN g.pattern LIKE '*%' THEN '' ELSE '(^|/)' END
               || replace(replace(regexp_replace(ltrim(g.pattern, '*'), '([.+^$(){}|\[\]\\])', '\\\1', 'g'),
                                  '*', '[^/]*'), '?', '[^/]')
               || '$',
               '|') || ')'
      FROM (SELECT trim(p) AS pattern
              FROM unnest(string_to_array(filegc.setting('managed_patterns'), ',')) AS p) AS g
$$;
COMMENT ON FUNCTION filegc.managed_regex() IS
    'Internal: the managed_patterns setting as one case-insensitive regular expression over relative paths';

CREATE VIEW filegc.settings AS
SELECT d.name,
       coalesce(o.value, d.default_value) AS value,
       d.description,
       d.default_value,
       d.kind,
       o.changed_at,
       o.changed_by
  FROM filegc.setting_defaults d
  LEFT JOIN filegc.setting_overrides o USING (name);
COMMENT ON VIEW filegc.settings IS
    'filegc settings: UPDATE filegc.settings SET value = ... WHERE name = ... changes one, DELETE resets it to its default';
-- Makes the settings view writable: UPDATE changes a setting, DELETE resets it.
CREATE FUNCTION filegc.settings_write() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    warning_pct numeric;
    critical_pct numeric;
    emergency_pct numeric;
BEGIN
    IF TG_OP = 'INSERT' THEN
        RAISE EXCEPTION 'filegc: settings cannot be added'
            USING HINT = 'Change an existing one: UPDATE filegc.settings SET value = ... WHERE name = ...';
    END IF;
    IF TG_OP = 'DELETE' THEN
        DELETE FROM filegc.setting_overrides WHERE name = OLD.name;
        RETURN OLD;
    END IF;
    IF NEW.name IS DISTINCT FROM OLD.name THEN
        RAISE EXCEPTION 'filegc: a setting cannot be renamed';
    END IF;
    PERFORM filegc.validate_setting(NEW.name, NEW.value);
    IF NEW.value = OLD.default_value THEN
        DELETE FROM filegc.setting_overrides WHERE name = NEW.name;
    ELSE
        INSERT INTO filegc.setting_overrides (name, value) VALUES (NEW.name, NEW.value)
        ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, changed_at = now(), changed_by = session_user;
    END IF;
    warning_pct := filegc.setting('alert_warning_pct')::numeric;
    critical_pct := filegc.setting('alert_critical_pct')::numeric;
    emergency_pct := filegc.setting('alert_emergency_pct')::numeric;
    IF NOT (warning_pct <= critical_pct AND critical_pct <= emergency_pct) THEN
        RAISE EXCEPTION 'filegc: alert levels must rise, but alert_warning_pct is %, alert_critical_pct %, alert_emergency_pct %',
            warning_pct, critical_pct, emergency_pct
            USING HINT = 'Change them in an order that keeps warning <= critical <= emergency.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION filegc.settings_write() IS
    'Internal: makes the view filegc.settings writable (UPDATE changes a setting, DELETE resets it)';
CREATE TRIGGER settings_write INSTEAD OF INSERT OR UPDATE OR DELETE ON filegc.settings
    FOR EACH ROW EXECUTE FUNCTION filegc.settings_write();

