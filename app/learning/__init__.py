"""Learning from the logs: gated retraining, the model registry's artifacts, the preference loop."""
