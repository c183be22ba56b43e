"""Pure ranking steps of a search: query words for keyword search, fusion and grouping, relevance, highlighting,
and the re-ranking extension point."""
