"""Finding a client the way a person names one: by id, or by (a part of) its name."""

from __future__ import annotations

from sophia_mcp.app.services import Services
from sophia_mcp.domain.crm import Client
from sophia_mcp.errors import InvalidInput, NotFound


async def resolve_client(services: Services, ref: str) -> Client:
    """A client by id, or by its name (or a part of it that only one client's name contains)."""
    ref = ref.strip()
    if ref.isdigit():
        client = await services.crm.get_client(ref)
        if client is not None:
            return client
    page = await services.crm.list_clients(ref, 6, None)
    exact = [c for c in page.clients if c.name.casefold() == ref.casefold()]
    if len(exact) == 1 or len(page.clients) == 1:
        return exact[0] if exact else page.clients[0]
    if not page.clients:
        raise NotFound(f"No client matches {ref!r}. Use list_clients to find client ids and names.")
    names = ", ".join(f"{c.name} ({c.id})" for c in page.clients[:5])
    raise InvalidInput(f"{ref!r} matches several clients: {names}. Give the id or the full name.")
