"""Who is calling: the principal every RPC runs as, and what its roles allow."""
