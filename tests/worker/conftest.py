from tests.support.mongo import nx_mongo_url  # noqa: F401  (a fixture: the session's nx-27017)
