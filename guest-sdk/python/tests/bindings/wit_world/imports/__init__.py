"""Double of `wit_world.imports`."""
