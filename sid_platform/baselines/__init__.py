"""Yardsticks trained in the same run as every other model: most-popular and SASRec."""
