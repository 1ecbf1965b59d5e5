"""What client, server, worker and event codec share about the wire format."""
