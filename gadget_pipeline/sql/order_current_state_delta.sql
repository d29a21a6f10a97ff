-- What a build of order_latest_event (the staging table {target_table}) changes, for the swap in
-- gadget_pipeline/athena/current_state.py: one row per partition it wrote -- (order_date, presence) and
-- its number of orders -- plus one row with presence NULL and 0 orders for each date it emptied: a date
-- whose only orders moved to another date (removed and created again with another order_ts), so the
-- build wrote nothing for it and its partitions must go. Reads only the new build's rows and, of the
-- previous build, the two columns that locate an order.
SELECT order_date, presence, count(*) AS orders
FROM {database}.{target_table}
GROUP BY order_date, presence
UNION ALL
SELECT DISTINCT previous.order_date, CAST(NULL AS VARCHAR) AS presence, 0 AS orders
FROM {database}.{previous_table} AS previous
JOIN {database}.{target_table} AS build ON previous.order_id = build.order_id
WHERE previous.order_date <> build.order_date
  AND previous.order_date NOT IN (SELECT order_date FROM {database}.{target_table})
