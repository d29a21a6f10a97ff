-- Revenue per order date and currency over the most recent days of daily_sales (for charts and `demo`).
SELECT
    order_date,
    currency,
    CAST(sum(orders) AS BIGINT) AS orders,
    CAST(sum(units) AS BIGINT) AS units,
    CAST(sum(revenue) AS DECIMAL(18, 2)) AS revenue
FROM {database}.{daily_sales_table}
WHERE order_date >= CAST(:since AS DATE)
GROUP BY order_date, currency
ORDER BY order_date, currency
