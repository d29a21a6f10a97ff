-- The partitions a full build of order_latest_event (the staging table {target_table}) wrote, with their
-- numbers of orders (kept as partition parameters, so that later refreshes count orders from the catalog).
SELECT order_date, presence, count(*) AS orders
FROM {database}.{target_table}
GROUP BY order_date, presence
