"""The outbox: every event the portal tells people and other systems about, one row each,
written by its producer in the producer's own transaction (see `record`)."""
