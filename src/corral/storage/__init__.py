"""SQLAlchemy 2 tables and the database handle; SQLite (WAL) by default, PostgreSQL by URL."""
