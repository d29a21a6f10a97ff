-- Full build of the latest change event of every order, live or removed (the table behind
-- order_current_state; see gadget_pipeline/athena/current_state.py).
--
-- An order's current state is its event with the greatest sequence number. Sequence numbers are digit
-- strings of up to 40 digits (more than DECIMAL(38,0) holds), so they are ordered numerically by
-- (length, text). Equal sequence numbers are the same event delivered twice: any copy will do, event_id
-- makes the pick deterministic. Duplicated or reordered deliveries therefore change nothing.
-- Partitioned by the order's date (order_ts never changes, so an order stays in its date partition and an
-- incremental refresh rewrites only the dates its new events touch), then by what the winning event
-- says: presence = 'live', or 'removed' for a REMOVE (a tombstone, kept so that an incremental refresh
-- cannot bring a removed order back from an older event).
-- Only the winners are cast to typed columns; money is exact DECIMAL, never a float.
CREATE TABLE {database}.{target_table}
WITH (
    format = 'PARQUET',
    write_compression = 'SNAPPY',
    external_location = '{target_location}',
    partitioned_by = ARRAY['order_date', 'presence']
) AS
WITH ranked_events AS (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY order_id
            ORDER BY length(sequence_number) DESC, sequence_number DESC, event_id
        ) AS recency
    FROM {database}.{raw_table}
    WHERE order_id IS NOT NULL AND sequence_number IS NOT NULL
)
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
    CASE WHEN coalesce(is_deleted, event_name = 'REMOVE') THEN 'removed' ELSE 'live' END AS presence
FROM ranked_events
WHERE recency = 1
