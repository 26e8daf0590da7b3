"""Configuration: the option table, single-value checks, the config file, profile editing, the emulator switch."""
