"""Model code: Arabic preprocessing, the tagging-and-summary network, artifacts and the predictor."""
