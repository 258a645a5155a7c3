"""Naba: tag Arabic news articles by topic, point at the evidence and summarise them extractively."""

__version__ = "0.1.0"
