"""Reading flowenv configuration: discovery, TOML source with line numbers, models, validation."""
