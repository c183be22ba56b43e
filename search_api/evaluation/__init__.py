"""Retrieval evaluation: the harness running BEIR queries through the Searcher, the metrics, significance tests and
the comparison of two runs (`news-search eval`, `news-search compare`)."""
