-- 0018: parcel profiles (issue 14): what one unit of each SKU weighs and measures, packed, so a
-- label is bought for the parcel that really ships instead of the one default of [parcel].
--
-- A row is refused unless Canada Post can take it as it stands (fulfil/canadapost/schema.py): a
-- weight above 0 and at most 30 kg in whole grams; no dimensions or all three, each above 0 and
-- at most 999.9 cm in whole millimetres. Nothing is rounded here: a value with more decimals is
-- a typing error more often than a precision, and a label bought for a wrong weight costs money.
-- numeric, not numeric(p, s): a typed scale would round what it was given instead of refusing it.
-- 'NaN' and the infinities fail the bounds. SKU and box: text a line of output can show (no
-- control characters, no spaces around), bounded as fulfil/parcels/profiles.py bounds them.

CREATE TABLE IF NOT EXISTS parcel_profiles (
    sku         text PRIMARY KEY,
    weight_kg   numeric NOT NULL,
    length_cm   numeric,
    width_cm    numeric,
    height_cm   numeric,
    box         text,
    ships_alone boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT parcel_profiles_sku_sane CHECK (
        sku <> '' AND length(sku) <= 100 AND sku = btrim(sku) AND sku !~ '[\x01-\x1f\x7f-\x9f]'),
    CONSTRAINT parcel_profiles_weight_takeable CHECK (
        weight_kg > 0 AND weight_kg <= 30 AND weight_kg = round(weight_kg, 3)),
    CONSTRAINT parcel_profiles_dimensions_all_or_none CHECK (
        num_nonnulls(length_cm, width_cm, height_cm) IN (0, 3)),
    CONSTRAINT parcel_profiles_length_takeable CHECK (
        length_cm IS NULL OR (length_cm > 0 AND length_cm <= 999.9 AND length_cm = round(length_cm, 1))),
    CONSTRAINT parcel_profiles_width_takeable CHECK (
        width_cm IS NULL OR (width_cm > 0 AND width_cm <= 999.9 AND width_cm = round(width_cm, 1))),
    CONSTRAINT parcel_profiles_height_takeable CHECK (
        height_cm IS NULL OR (height_cm > 0 AND height_cm <= 999.9 AND height_cm = round(height_cm, 1))),
    CONSTRAINT parcel_profiles_box_sane CHECK (
        box IS NULL
        OR (box <> '' AND length(box) <= 64 AND box = btrim(box) AND box !~ '[\x01-\x1f\x7f-\x9f]'))
);
