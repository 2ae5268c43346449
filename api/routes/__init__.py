"""The API's routers: health, cameras (config, writes), analytics (counts, peaks, occupancy),
monitoring (seed 002: metrics, SLA, alerts), live (WebSocket and SSE push)."""
