"""newsearch indexer: read, clean, chunk, embed and store news articles as a versioned index."""

__version__ = "0.1.0"
