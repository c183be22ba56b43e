"""Saved-search alerts on the server: the pure matching core, the evaluation of one update's batch on the served
Searcher, and the worker thread that evaluates batches and delivers webhooks. Their HTTP routes: search_api.server.alerts."""
