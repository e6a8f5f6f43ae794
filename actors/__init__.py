"""An asyncio actor runtime with persistent actors: spawn, dispatch, query, supervise, persist."""
