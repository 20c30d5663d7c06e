"""The Scrapy settings module (``scrapy.cfg`` points here).

Only what never varies lives here. Everything a deployment tunes (politeness, caching,
state, the browser path) comes from ``SCRAPER_*`` settings through ``addon.ReviewscoreAddon``
at the "addon" priority, so ``-s NAME=VALUE`` on the command line still wins.
"""

BOT_NAME = "reviewscore"
SPIDER_MODULES = ["scraper.spiders"]
NEWSPIDER_MODULE = "scraper.spiders"

# The add-on also installs the Kafka pipeline, or with REVIEWSCORE_PUBLISH off the contract
# pipeline alone (neither during `scrapy check`, which needs no broker).
ADDONS = {"scraper.addon.ReviewscoreAddon": 0}
SPIDER_CONTRACTS = {"scraper.contracts.FixtureUrlContract": 10}

# Politeness that holds whatever the settings say: one site at a time gets modest traffic.
CONCURRENT_REQUESTS = 16
DOWNLOAD_DELAY_JITTER = 0.5  # +-50% around DOWNLOAD_DELAY, so requests do not tick like a clock
AUTOTHROTTLE_MAX_DELAY = 30.0
RETRY_TIMES = 2
DOWNLOAD_TIMEOUT = 30

# Incremental re-crawls: an RFC 2616 cache revalidates pages (ETag / Last-Modified) and
# gets 304 Not Modified for unchanged ones, instead of downloading them again.
HTTPCACHE_POLICY = "scrapy.extensions.httpcache.RFC2616Policy"
HTTPCACHE_STORAGE = "scrapy.extensions.httpcache.FilesystemCacheStorage"
HTTPCACHE_IGNORE_HTTP_CODES = [500, 502, 503, 504, 408, 429]

FEED_EXPORT_ENCODING = "utf-8"
# No listening ports from a crawler: no telnet console, no remote-control server.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
LOG_LEVEL = "INFO"
