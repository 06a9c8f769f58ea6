-- filegc: what became of the alerts `filegc run` posts to alert_webhook_url.
-- The sweeper tries each alert several times; once it arrived, or the last
-- try failed, the run records the outcome here, so that an operator sees a
-- receiver that stopped answering without reading the sweeper's logs. A
-- record names the receiver's host only: the URL's path often holds its
-- secret (Slack's and Discord's do).

-- The latest 200 deliveries: the record says how alerting fares now, not
-- its whole history (the logs have that).
CREATE TABLE filegc.alert_delivery_log (
    id bigserial PRIMARY KEY,
    finished_at timestamptz NOT NULL,
    worker text NOT NULL,
    level text NOT NULL,
    previous_level text NOT NULL,
    webhook_host text NOT NULL,
    attempts integer NOT NULL,
    error text
);
COMMENT ON TABLE filegc.alert_delivery_log IS
    'The latest alert deliveries of filegc run, delivered or given up; read filegc.alert_deliveries';

-- The record is the operator's data, as the runs are: pg_dump saves it.
SELECT filegc.keep_in_dumps(t)
  FROM unnest(ARRAY['filegc.alert_delivery_log', 'filegc.alert_delivery_log_id_seq']::regclass[]) AS t;

-- The run calls this when an alert arrived or its last try failed; a
-- failure met while the database was away is recorded once it is back, with
-- the time it happened. SECURITY DEFINER: the sweeper's role writes no table.
CREATE FUNCTION filegc.record_alert_delivery(
    worker text, finished_at timestamptz, level text, previous_level text,
    webhook_host text, attempts integer, error text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO filegc.alert_delivery_log (finished_at, worker, level, previous_level, webhook_host, attempts, error)
    VALUES (record_alert_delivery.finished_at, record_alert_delivery.worker, record_alert_delivery.level,
            record_alert_delivery.previous_level, record_alert_delivery.webhook_host,
            record_alert_delivery.attempts, left(record_alert_delivery.error, 2000));
    DELETE FROM filegc.alert_delivery_log d
     WHERE d.id <= (SELECT k.id FROM filegc.alert_delivery_log k
                     ORDER BY k.id DESC OFFSET 200 LIMIT 1);
END
$$;
COMMENT ON FUNCTION filegc.record_alert_delivery(text, timestamptz, text, text, text, integer, text) IS
    'Sweeper protocol: records how the delivery of an alert to the webhook ended (error NULL when it arrived)';

CREATE VIEW filegc.alert_deliveries AS
SELECT d.finished_at,
       (d.error IS NULL) AS delivered,
       d.level,
       d.previous_level,
       d.webhook_host,
       d.attempts,
       d.error,
       d.worker
  FROM filegc.alert_delivery_log d
 ORDER BY d.finished_at DESC, d.id DESC;
COMMENT ON VIEW filegc.alert_deliveries IS
    'The latest alerts filegc run posted to alert_webhook_url, newest first: delivered, or given up after every try with the last error; the receiver is named by its host only';
