-- The rows of one order date of daily_sales, best sellers first.
SELECT
    order_date,
    product_name,
    brand,
    category,
    currency,
    orders,
    units,
    revenue
FROM {database}.{daily_sales_table}
WHERE order_date = CAST(:order_date AS DATE)
ORDER BY revenue DESC, product_name
