"""Webhooks: endpoints subscribed to activity events, signed deliveries (Standard Webhooks),
the dispatcher that makes the attempts, and the guard that keeps them off private networks."""
