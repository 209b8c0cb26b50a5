"""The real-time frame stream: framing, latest-frame-wins sessions and temporal tracking."""
