"""newsearch search side: the Searcher, the HTTP API, its CLI and the Python client."""
