"""The bundled demo: calls, clients, documents and history to try every workflow on."""
