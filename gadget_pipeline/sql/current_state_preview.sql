-- The most recently changed live orders, for the asset's preview.
SELECT
    order_id,
    product_name,
    brand,
    quantity,
    unit_price,
    total_amount,
    status,
    order_date,
    updated_at
FROM {database}.{current_state_table}
ORDER BY updated_at DESC, order_id
LIMIT 10
