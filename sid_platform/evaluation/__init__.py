"""The one implementation of the ranking metrics, used by every model in the project."""
