"""The five seed articles of the annotation guide (seeds.jsonl), installed as package data."""
