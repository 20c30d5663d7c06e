"""Read-only query API over scored reviews, submission through Kafka, and the dashboard.

``create_app(api, database, kafka)`` builds the FastAPI app; nothing connects at import time.
"""

from query_api.app import create_app

__all__ = ["create_app"]
