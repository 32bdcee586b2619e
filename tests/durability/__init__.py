"""Worker code for the durability tests that the real services must never contain."""
