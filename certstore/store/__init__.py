"""Persistence: SQLAlchemy database and blob stores."""
