"""What Canada Post's schemas fix: the versioned media types and XML namespaces fulfil speaks, and
the field lengths of Create Shipment (shipment-v8 and ncshipment-v4).

Canada Post asks for one version per service category, used for every call in that category; a
request body must carry the namespace of exactly the version its media type names. Lengths are
counted in characters: Canada Post refuses a request whose field is one character too long, and
that refusal costs a round trip per order, so every value is fitted or refused before sending.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

# Contract shipping (Create Shipment, Get Shipment(s), details, refund).
SHIPMENT_MEDIA_TYPE: Final = "application/vnd.cpc.shipment-v8+xml"
SHIPMENT_NAMESPACE: Final = "http://www.canadapost.ca/ws/shipment-v8"

# Non-contract (card-paid) shipping.
NCSHIPMENT_MEDIA_TYPE: Final = "application/vnd.cpc.ncshipment-v4+xml"
NCSHIPMENT_NAMESPACE: Final = "http://www.canadapost.ca/ws/ncshipment-v4"

# Error bodies of every service. Seen in other namespaces too, so parsers match by local name.
MESSAGES_NAMESPACE: Final = "http://www.canadapost.ca/ws/messages"

# Tracking: the schema is in the unversioned namespace; v2 answers have been seen in track-v2.
TRACK_MEDIA_TYPE: Final = "application/vnd.cpc.track-v2+xml"
TRACK_NAMESPACE: Final = "http://www.canadapost.ca/ws/track"
TRACK_V2_NAMESPACE: Final = "http://www.canadapost.ca/ws/track-v2"

# Rating (Get Rates): quotes before buying, a category and a version of their own.
RATE_MEDIA_TYPE: Final = "application/vnd.cpc.ship.rate-v4+xml"
RATE_NAMESPACE: Final = "http://www.canadapost.ca/ws/ship/rate-v4"

# Get Artifact answers with the label itself.
PDF_MEDIA_TYPE: Final = "application/pdf"

# --- field lengths ---------------------------------------------------------------------

NAME_MAX: Final = 44
COMPANY_MAX: Final = 44
ADDRESS_LINE_MAX: Final = 44
ADDITIONAL_ADDRESS_INFO_MAX: Final = 44
CITY_MAX: Final = 40
PROVINCE_MAX: Final = 2
PHONE_MAX: Final = 25
REFERENCE_MAX: Final = 35
CUSTOMER_REQUEST_ID_MAX: Final = 35
SERVICE_CODE_MAX: Final = 32

# Parcel measures: the schema allows 3 decimals of kg up to 999.999 and 1 decimal of cm up to
# 999.9; Canada Post's parcel services refuse anything over 30 kg.
WEIGHT_MAX_KG: Final = Decimal(30)
DIMENSION_MAX_CM: Final = Decimal("999.9")
