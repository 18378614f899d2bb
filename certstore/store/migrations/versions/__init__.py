"""Alembic revisions (a package only so that wheels ship them; Alembic ignores this file)."""
