"""Where each parcel is, as Canada Post last said: kept in the database, refreshed within budget."""
