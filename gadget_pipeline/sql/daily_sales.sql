-- One day of daily_sales, appended to the (just emptied) order_date=:order_date partition: per product,
-- brand, category and currency (money in different currencies is never added up), the live orders of
-- that day, the units and the exact revenue. Cancelled orders don't count; removed orders are not in
-- order_current_state at all. Columns are cast to the table's exact types, as INSERT INTO requires.
INSERT INTO {database}.{target_table}
SELECT
    product_name,
    brand,
    category,
    currency,
    CAST(count(*) AS BIGINT) AS orders,
    CAST(sum(quantity) AS BIGINT) AS units,
    CAST(sum(total_amount) AS DECIMAL(18, 2)) AS revenue,
    order_date
FROM {database}.{current_state_table}
WHERE order_date = CAST(:order_date AS DATE)
  AND status IS DISTINCT FROM 'CANCELLED'
GROUP BY product_name, brand, category, currency, order_date
