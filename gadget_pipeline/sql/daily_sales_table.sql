-- The daily_sales table: one Parquet folder per order date (order_date=YYYY-MM-DD/), each rebuilt on its
-- own by daily_sales.sql (see gadget_pipeline/athena/daily_sales.py). Idempotent.
CREATE EXTERNAL TABLE IF NOT EXISTS {database}.{target_table} (
    product_name string,
    brand string,
    category string,
    currency string,
    orders bigint,
    units bigint,
    revenue decimal(18, 2)
)
PARTITIONED BY (order_date date)
STORED AS PARQUET
LOCATION '{target_location}'
TBLPROPERTIES ('parquet.compression' = 'SNAPPY')
