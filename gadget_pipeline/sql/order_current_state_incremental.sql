-- Incremental refresh of the latest change event of every order: the previous build plus only the raw
-- partitions at or after (:from_year, :from_month, :from_day, :from_hour). The result holds only the
-- order_date partitions that the new events touch -- complete, every row of those dates -- and the caller
-- swaps exactly those partitions into order_latest_event (every other date keeps its files), so the work
-- follows the new data, not the number of orders or the length of history.
--
-- Same rule as order_current_state.sql (greatest sequence number by (length, text), event_id breaks
-- ties, REMOVE events stay as 'removed' tombstones), applied only to the orders the new events change:
-- an event that does not beat the order's previous latest event (a re-read or late, older one) changes
-- nothing and touches nothing. A date is touched when a touched order's new winner or its previous row
-- lies in it (an order removed and created again with another order_ts moves to another date). Every
-- other order of a touched date is carried over as it was. Re-reading a partition that the previous
-- build already saw is harmless -- the result is invariant under duplicated events -- which is what lets
-- the caller re-read the last partitions to catch objects that landed in them late.
--
-- The previous state is read twice: three narrow columns of every order (to find the changes and where
-- the changed orders were), then whole rows of the touched dates only (the date filter is on the
-- partition column, so the engine reads those dates' files only).
--
-- The result also holds, in partition presence = 'vacated', one marker row per date that a changed order
-- left (its previous row's date): the caller takes such a date as touched -- emptied, if the build wrote
-- no live or removed rows for it -- and never swaps the marker partition in. So the caller learns
-- everything it needs from the partitions this statement wrote, without reading the previous state again.
-- The raw partition filter compares the partition columns themselves (not an expression of them), so
-- both Athena and the local engine prune partitions through the Glue catalog.
CREATE TABLE {database}.{target_table}
WITH (
    format = 'PARQUET',
    write_compression = 'SNAPPY',
    external_location = '{target_location}',
    partitioned_by = ARRAY['order_date', 'presence']
) AS
WITH new_events AS (
    -- still as they landed (text): only the latest change of each changed order is cast, below
    SELECT *
    FROM {database}.{raw_table}
    WHERE (
        year > :from_year
        OR (year = :from_year AND (
            month > :from_month
            OR (month = :from_month AND (
                day > :from_day
                OR (day = :from_day AND hour >= :from_hour)
            ))
        ))
    )
      AND order_id IS NOT NULL AND sequence_number IS NOT NULL
),
changes AS (
    -- the new events that beat the order's previous latest event; re-read events (the lookback) and
    -- late, older ones do not, so they touch nothing. previous_date: where the order was (NULL: new)
    SELECT new_events.*, previous.order_date AS previous_date
    FROM new_events
    LEFT JOIN {database}.{previous_table} AS previous ON previous.order_id = new_events.order_id
    WHERE previous.order_id IS NULL
       OR length(new_events.sequence_number) > length(previous.sequence_number)
       OR (length(new_events.sequence_number) = length(previous.sequence_number)
           AND (new_events.sequence_number > previous.sequence_number
                OR (new_events.sequence_number = previous.sequence_number
                    AND new_events.event_id < previous.event_id)))
),
ranked AS (
    -- a change beats the order's previous row by definition, so an order's new latest event is the
    -- latest of its changes: the previous rows need not be ranked, only located (previous_date)
    SELECT
        *,
        row_number() OVER (
            PARTITION BY order_id
            ORDER BY length(sequence_number) DESC, sequence_number DESC, event_id
        ) AS recency
    FROM changes
),
latest AS (
    -- each changed order's new latest event, typed as in order_current_state.sql; previous_date: where
    -- the order was before (NULL: a new order)
    SELECT
        order_id,
        customer_id,
        product_name,
        brand,
        category,
        CAST(quantity AS INTEGER) AS quantity,
        CAST(unit_price AS DECIMAL(12, 2)) AS unit_price,
        CAST(total_amount AS DECIMAL(14, 2)) AS total_amount,
        currency,
        status,
        CAST(from_iso8601_timestamp(order_ts) AS TIMESTAMP) AS order_ts,
        CAST(from_iso8601_timestamp(updated_at) AS TIMESTAMP) AS updated_at,
        event_id,
        event_name,
        CAST(from_iso8601_timestamp(event_ts) AS TIMESTAMP) AS event_ts,
        sequence_number,
        CAST(CAST(from_iso8601_timestamp(order_ts) AS TIMESTAMP) AS DATE) AS order_date,
        CASE WHEN coalesce(is_deleted, event_name = 'REMOVE') THEN 'removed' ELSE 'live' END AS presence,
        previous_date
    FROM ranked
    WHERE recency = 1
),
winners AS (
    SELECT
        order_id, customer_id, product_name, brand, category, quantity, unit_price, total_amount, currency,
        status, order_ts, updated_at, event_id, event_name, event_ts, sequence_number, order_date, presence
    FROM latest
),
vacated AS (
    -- the changed orders that left a date (removed and created again with another order_ts)
    SELECT
        order_id, customer_id, product_name, brand, category, quantity, unit_price, total_amount, currency,
        status, order_ts, updated_at, event_id, event_name, event_ts, sequence_number,
        previous_date AS order_date, 'vacated' AS presence
    FROM latest
    WHERE previous_date <> order_date
),
touched_dates AS (
    SELECT order_date FROM winners
    UNION
    SELECT order_date FROM vacated
)
SELECT * FROM winners
UNION ALL
SELECT previous.*
FROM {database}.{previous_table} AS previous
WHERE previous.order_date IN (SELECT order_date FROM touched_dates)
  AND NOT EXISTS (SELECT 1 FROM winners WHERE winners.order_id = previous.order_id)
UNION ALL
SELECT * FROM vacated
