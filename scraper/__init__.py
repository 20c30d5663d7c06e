"""The review crawler: a Scrapy project whose pipeline publishes every review to Kafka.

Layout: ``settings`` (the Scrapy settings module) + ``addon`` (maps ``SCRAPER_*`` settings
onto Scrapy's), ``items`` (dataclass items), ``page_selectors`` (every CSS selector and URL
pattern in one place), ``extract`` (pure functions from a page to reviews and links),
``spiders/`` (the crawl logic), ``publishing`` (item -> ``ReviewMessage``), ``seen``
(incremental re-crawl state), ``pipelines`` (the Kafka producer), ``contracts`` (the
``@fixture_url`` contract for ``scrapy check``), ``fixture_site`` (a bundled test site),
``runner`` + ``cli`` (``reviewscore crawl`` and ``reviewscore fixture-site``).
"""
