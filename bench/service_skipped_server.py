"""A sophia-mcp server whose tools do their service's work once per distinct arguments, then answer it again.

`python bench/service_skipped_server.py NAME` serves `sophia-mcp serve NAME` over stdio with every async tool
wrapped, as it is declared, to keep its first result for each set of arguments and return that on later calls:
the same arguments validation, Context, middleware, result conversion and reply as the real server, without the
store or the search. Beside the real server in the same turns (bench/server_speed.py reads --service-share), what
it saves is the service's share of a call, run where it runs (caches cold after the other processes' turns).
For measuring only: nothing in the package keeps results.
"""

import functools
import inspect
import sys
from typing import Any

from sophia_mcp.cli import main
from sophia_mcp.mcp.server import SophiaServer

declare = SophiaServer.declare_tool


def declare_once(server: SophiaServer, fn: Any, name: str, **options: Any) -> None:
    if not inspect.iscoroutinefunction(fn):
        return declare(server, fn, name, **options)
    answers: dict[str, Any] = {}

    @functools.wraps(fn)
    async def once(*args: Any, **kwargs: Any) -> Any:
        key = repr(sorted((k, v) for k, v in kwargs.items() if k != "ctx"))
        if key not in answers:
            answers[key] = await fn(*args, **kwargs)
        return answers[key]

    return declare(server, once, name, **options)


SophiaServer.declare_tool = declare_once  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "serve", sys.argv[1]]
    main()
