"""The shipment lifecycle (states and moves) and the one store that reads and writes shipments."""
