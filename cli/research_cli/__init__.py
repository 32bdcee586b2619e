"""The `deep-research` command."""
