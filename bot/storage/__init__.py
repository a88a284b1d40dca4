"""SQL storage: tables, database access, migrations and repositories."""
