-- Asset check: order_current_state holds each order at most once.
SELECT
    count(*) AS row_count,
    count(DISTINCT order_id) AS distinct_orders
FROM {database}.{current_state_table}
