"""The versioned media types and XML namespaces fulfil speaks with Canada Post.

Canada Post asks for one version per service category, used for every call in that category;
a request body must carry the namespace of exactly the version its media type names.
"""

from __future__ import annotations

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

# Get Artifact answers with the label itself.
PDF_MEDIA_TYPE: Final = "application/pdf"
