"""The embedded store (SQLite): its connection, its migrations, and one repository per concern."""
