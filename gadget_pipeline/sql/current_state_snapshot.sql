-- The fields of every live order that reconciliation compares with a scan of the orders table.
SELECT
    order_id,
    status,
    quantity,
    unit_price,
    total_amount
FROM {database}.{current_state_table}
