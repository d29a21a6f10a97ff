"""Jobs that sensors and schedules launch (asset selections by key, so this module imports no assets)."""

import dagster as dg

crawl_raw_cdc_job = dg.define_asset_job(
    "crawl_raw_cdc_job",
    selection=dg.AssetSelection.assets("gadget_orders_cdc", "order_current_state"),
    description="Crawl the raw CDC files (new partitions or columns), then rebuild the current state.",
)

refresh_current_state_job = dg.define_asset_job(
    "refresh_current_state_job",
    selection=dg.AssetSelection.assets("order_current_state"),
    description="Fold new CDC events into the current state of every order.",
)

daily_sales_job = dg.define_asset_job(
    "daily_sales_job",
    selection=dg.AssetSelection.assets("daily_sales"),
    description="Rebuild one day of daily sales from the current state.",
)
