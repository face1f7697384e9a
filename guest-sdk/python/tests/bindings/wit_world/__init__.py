"""Double of the generated `wit_world` package."""
