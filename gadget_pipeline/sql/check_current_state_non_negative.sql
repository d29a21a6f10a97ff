-- Asset check: no order has a negative quantity, unit price or total.
SELECT
    count_if(quantity < 0) AS negative_quantity,
    count_if(unit_price < 0) AS negative_unit_price,
    count_if(total_amount < 0) AS negative_total_amount
FROM {database}.{current_state_table}
