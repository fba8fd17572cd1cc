"""Realtime broadcasts of the events: the relay that writes them (`intent relay`)."""
