"""Model providers for the Agents SDK: an OpenAI-compatible endpoint, or the offline model."""
