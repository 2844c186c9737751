"""The operator's pairing registry: MQTT service, domain model, storage and app SDK."""
