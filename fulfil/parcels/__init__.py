"""Parcel profiles (issue 14): what each SKU weighs and measures, and the parcels an order makes.

* ``profiles``: ``ParcelProfile`` and the CSV a seller keeps them in (`fulfil parcels import`);
* ``store``: the one owner of the ``parcel_profiles`` queries (sql/queries/parcel_profiles.sql);
* ``choice``: ``plan_parcels``, the parcel (or parcels) an order ships in, a pure function.
"""
