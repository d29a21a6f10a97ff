-- The order dates present in order_current_state: the daily_sales partitions worth building.
SELECT DISTINCT order_date
FROM {database}.{current_state_table}
ORDER BY order_date
