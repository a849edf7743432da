"""Canada Post web services: Create Shipment requests and the answers Canada Post sends back.

Everything in this package is pure (no HTTP, no database): it turns a Best Buy (Mirakl) order
into request XML and Canada Post's XML answers into typed values.
"""
