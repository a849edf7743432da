"""Canada Post's field lengths for Create Shipment (shipment-v8 and ncshipment-v4 schemas).

Counted in characters. Canada Post refuses a request whose field is one character too long, and
that refusal costs a round trip per order, so every value is fitted or refused before sending.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

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
