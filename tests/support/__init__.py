"""What the tests share: settings, reading results and the store's file, starting processes, seeded fake states.

Test modules import from here (or get fixtures from conftest.py), never from one another."""
