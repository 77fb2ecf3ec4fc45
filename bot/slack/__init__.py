"""The Slack front door: the Bolt app and its listeners, the signature gate, the HTTP server."""
