"""Per-SKU parcel profiles (issue 14, part 1): the CSV, the table and its checks, the parcel
choice of an order, and `fulfil parcels import | list | check` through the real command line."""
