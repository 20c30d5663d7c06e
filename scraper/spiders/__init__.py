"""Spiders of the review crawler."""
