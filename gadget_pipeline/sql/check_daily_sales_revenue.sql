-- Asset check for one order date: daily_sales revenue, orders and units equal the same sums taken
-- directly over order_current_state (cancelled orders excluded), per currency. Exact DECIMAL comparison.
WITH from_current_state AS (
    SELECT
        currency,
        count(*) AS orders,
        sum(quantity) AS units,
        sum(total_amount) AS revenue
    FROM {database}.{current_state_table}
    WHERE order_date = CAST(:order_date AS DATE)
      AND status IS DISTINCT FROM 'CANCELLED'
    GROUP BY currency
),
from_daily_sales AS (
    SELECT
        currency,
        sum(orders) AS orders,
        sum(units) AS units,
        sum(revenue) AS revenue
    FROM {database}.{daily_sales_table}
    WHERE order_date = CAST(:order_date AS DATE)
    GROUP BY currency
)
SELECT
    coalesce(c.currency, d.currency) AS currency,
    CAST(coalesce(c.orders, 0) AS BIGINT) AS current_state_orders,
    CAST(coalesce(d.orders, 0) AS BIGINT) AS daily_sales_orders,
    CAST(coalesce(c.units, 0) AS BIGINT) AS current_state_units,
    CAST(coalesce(d.units, 0) AS BIGINT) AS daily_sales_units,
    CAST(coalesce(c.revenue, 0) AS DECIMAL(18, 2)) AS current_state_revenue,
    CAST(coalesce(d.revenue, 0) AS DECIMAL(18, 2)) AS daily_sales_revenue
FROM from_current_state AS c
FULL OUTER JOIN from_daily_sales AS d ON c.currency = d.currency
ORDER BY 1
