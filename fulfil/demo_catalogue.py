"""What the demo ships its sample orders as: a parcel profile for each product of the sandbox's
catalogue, and service and option rules, written where the seller can read them
(``parcel-profiles.csv`` and ``rules.toml`` beside the demo's labels) and used like a seller's own:
the profiles imported with the same reader as `fulfil parcels import`, the rules read from the
file through FULFIL_CONFIG."""

from __future__ import annotations

from pathlib import Path

# One unit of each catalogue product as packed (kg, cm). A monitor ships alone, in its own box: an
# order with one and anything else (or two monitors) is several parcels, one label each.
PROFILES_CSV = """\
sku,weight_kg,length_cm,width_cm,height_cm,box,ships_alone
P52-32-512-FP,2.9,45,33,8,laptop box,no
HP450G7-16-256,2.3,44,31,7,laptop box,no
WH1000XM4-BLK,0.6,27,22,10,small box,no
U2723QE-REF,9.8,78,52,18,monitor box,yes
MXM3S-GRAPH,0.3,16,12,7,padded mailer,no
KIN-NV2-1TB,0.1,14,10,2,padded mailer,no
AX3000-RTR,1.1,32,24,10,small box,no
TAB-S6L-64,1.0,30,22,6,small box,no
"""

RULES_TOML = """\
# The demo's shipping rules (README: "Service and option rules"). The first service rule that
# matches an order decides its service; every option rule that matches adds its options.

[[service_rules]]
name = "heavy goes Regular"
min_weight_kg = 5
service = "DOM.RP"

[[service_rules]]
name = "the west: cheapest in time"
provinces = ["BC", "AB", "SK", "MB"]
service = "cheapest_meeting_deadline"
transit_days = 3

[[option_rules]]
name = "signature over $500"
min_order_value = 500
options = ["SO"]
"""

# The product the demo adds to one order to show an order split into parcels (it ships alone).
SPLIT_ORDER_SKU = "U2723QE-REF"

PROFILES_FILE = "parcel-profiles.csv"
RULES_FILE = "rules.toml"


def write_demo_inputs(labels_dir: Path) -> tuple[Path, Path]:
    """The profiles CSV and the rules file, written afresh beside the demo's labels."""
    labels_dir.mkdir(parents=True, exist_ok=True)
    profiles, rules = labels_dir / PROFILES_FILE, labels_dir / RULES_FILE
    profiles.write_text(PROFILES_CSV, encoding="utf-8")
    rules.write_text(RULES_TOML, encoding="utf-8")
    return profiles, rules
