"""Training-side code: reading labelled data, ROUGE and oracle labels, metrics, and the retraining CLI."""
