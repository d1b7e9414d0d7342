"""Live demo: a simulated gateway that writes a realistic, growing data root."""
