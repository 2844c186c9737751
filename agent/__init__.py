"""The device agent: hardware drivers (modem, card) and the first-boot logic."""
