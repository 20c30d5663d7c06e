"""Read-only query API over scored reviews, submission through Kafka, and the dashboard.

``query_api.app.create_app(api, database, kafka)`` builds the FastAPI app; nothing connects
at import time. The package itself imports nothing heavy, so loading the ``reviewscore``
command plugins (every CLI call, every crawl subprocess) does not pay for FastAPI.
"""
