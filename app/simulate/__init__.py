"""Simulation with a known truth: traffic, the learning loop and the generation loop."""
